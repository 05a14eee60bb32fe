"""One process per run directory (or curate output folder).

    with acquire(run_dir, command="infir pretrain tiny"):    # or held until the process exits
        ...

The lock is an `fcntl.flock` on `<dir>/.lock`, held by an open file descriptor for the lifetime of
the process: the kernel drops it when the process dies, however it dies (SIGKILL included), so a
killed holder never leaves a stale lock behind. The same file holds a JSON record of the holder
(pid, host, since, command) so the second process can say who it is waiting on; the record is
informational only, the flock is the truth.

flock is advisory and per open file description: a second `acquire` in the same process (a new open)
conflicts too, which is what tests rely on. On network filesystems without flock support, `acquire`
reports that it cannot lock instead of silently running unprotected.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path

LOCK_NAME = ".lock"


class LockError(RuntimeError):
    """Another process holds the directory (or it cannot be locked at all)."""


@dataclass
class DirLock:
    path: Path
    fd: int | None
    key: str = ""

    def release(self) -> None:
        if self.fd is None:
            return
        _HELD.pop(self.key, None)
        try:
            # Truncate first, so nobody reads a stale holder between unlock and close.
            os.ftruncate(self.fd, 0)
        except OSError:
            pass
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
        self.fd = None

    def __enter__(self) -> "DirLock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


# Locks this process holds, by resolved directory: re-acquiring one we hold is a no-op, so a
# command that locks the run dir and then calls code that locks it again does not deadlock itself.
_HELD: dict[str, DirLock] = {}


def _holder(path: Path) -> dict:
    try:
        return json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return {}


def describe(holder: dict) -> str:
    since = holder.get("since")
    timed = isinstance(since, (int, float))
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(since)) if timed else "?"
    return (
        f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')} since {when} "
        f"(command: {holder.get('command') or '?'})"
    )


def acquire(directory: str | Path, command: str | None = None) -> DirLock:
    """Lock `directory` for this process or raise LockError naming the holder; creates the directory."""
    directory = Path(directory)
    key = str(directory.resolve())
    held = _HELD.get(key)
    if held is not None and held.fd is not None:
        return held
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise LockError(
                f"{directory} is in use by {describe(_holder(path))}; wait for it to finish or "
                f"stop it, or use another directory"
            ) from None
        raise LockError(f"cannot lock {path}: {exc.strerror or exc}") from None
    record = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "since": time.time(),
        "command": command if command is not None else " ".join(["infir", *sys.argv[1:]]),
    }
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
    lock = _HELD[key] = DirLock(path, fd, key)
    return lock


def is_primary_rank() -> bool:
    """True outside torchrun and on its rank 0: the other ranks belong to rank 0's job and its lock."""
    try:
        return int(os.environ.get("RANK", "0")) == 0
    except ValueError:
        return True
