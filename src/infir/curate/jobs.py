"""Driver work that runs beside other work: a job is a function run in a forked child process.

The driver's jobs (loading recall seeds while the scan runs; one recall per domain and the quality
model while the driver clusters duplicates) need no pickling of their inputs: a forked child
already holds them. Only the result travels back, through a file. Plain processes, no pool
threads, so later forks (datatrove's workers) stay safe. Where fork is unavailable, or with one
worker, a job runs inline when its result is asked for.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import tempfile
import traceback
from typing import Callable


def _run(fn: Callable, args: tuple, path: str) -> None:
    try:
        payload = {"value": fn(*args)}
    except BaseException as e:  # noqa: BLE001 - the error is handed to the parent with its trace
        payload = {"error": f"{type(e).__name__}: {e}", "trace": traceback.format_exc()}
    with open(path, "wb") as f:
        pickle.dump(payload, f, protocol=pickle.HIGHEST_PROTOCOL)


class Job:
    def __init__(self, fn: Callable, *args, parallel: bool = True, folder: str | os.PathLike | None = None):
        self.fn, self.args = fn, args
        self.proc = None
        self._done = False
        self._value = None
        if parallel and "fork" in multiprocessing.get_all_start_methods():
            # the result file lives in the run's folder: a killed run leaves nothing elsewhere
            fd, self.path = tempfile.mkstemp(suffix=".job", dir=folder)
            os.close(fd)
            self.proc = multiprocessing.get_context("fork").Process(
                target=_run, args=(fn, args, self.path), daemon=True
            )
            self.proc.start()

    def result(self):
        if not self._done:
            self._value = self._collect()
            self._done = True
        return self._value

    def _collect(self):
        if self.proc is None:
            return self.fn(*self.args)
        self.proc.join()
        try:
            with open(self.path, "rb") as f:
                payload = pickle.load(f)
        except (OSError, EOFError, pickle.UnpicklingError) as e:
            raise RuntimeError(f"job {self.fn.__name__} died (exit code {self.proc.exitcode})") from e
        finally:
            os.unlink(self.path)
        if "error" in payload:
            raise RuntimeError(f"job {self.fn.__name__} failed: {payload['error']}\n{payload['trace']}")
        return payload["value"]

    def cancel(self) -> None:
        if self.proc is not None and self.proc.is_alive():
            self.proc.kill()
            self.proc.join()
        if self.proc is not None and os.path.exists(self.path):
            os.unlink(self.path)
