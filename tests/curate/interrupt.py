"""Kill a curation run midway: start it in a subprocess and kill -9 it once its first task has completed."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path


def kill_after_first_completion(script: str, completions: Path, timeout: float) -> None:
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout
    while time.time() < deadline and not (completions.is_dir() and any(completions.iterdir())):
        time.sleep(0.1)
    proc.kill()
    proc.wait()
