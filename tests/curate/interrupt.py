"""Kill a curation run midway: start it in a subprocess and kill -9 it once its first task has completed."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Callable


def kill_after_first_completion(script: str, completions: Path | Callable[[], bool], timeout: float) -> None:
    """`completions`: the local folder of a stage's completion files, or a function that says
    whether one exists (for a work folder on another filesystem)."""
    if isinstance(completions, Path):
        folder = completions
        completions = lambda: folder.is_dir() and any(folder.iterdir())  # noqa: E731
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + timeout
    while time.time() < deadline and not completions():
        time.sleep(0.1)
    proc.kill()
    proc.wait()
