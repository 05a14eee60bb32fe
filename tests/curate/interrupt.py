"""Kill a curation run midway: start it in a subprocess and kill -9 it, with every process it forked (as a
scheduler kills a job), once its first task has completed."""

from __future__ import annotations

import os
import signal
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
    # Its own process group: the script calls run_curate as a library, outside the CLI that ties forked
    # workers to their parent (infir.procs), so killing the parent alone would orphan the workers.
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + timeout
    while time.time() < deadline and not completions():
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
