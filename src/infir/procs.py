"""Child processes that cannot outlive the infir process that forked them.

datatrove's local executor forks a manager process and a pool of workers; when `infir curate` is
killed with SIGKILL nothing runs in the parent to stop them, and the manager waits forever. On Linux,
`prctl(PR_SET_PDEATHSIG, SIGKILL)` in every forked child makes the kernel kill it when its parent
dies. It is set from an `os.register_at_fork` hook, so it covers every fork of this process and of
its forked children (the hooks are inherited), without each library having to cooperate.

The signal follows the *thread* that forked: a child forked by a worker thread is killed when that
thread ends. Python's multiprocessing forks from the thread that creates the pool or process (the
main thread in infir's stages), and subprocess.Popen's fork+exec does not run the hooks at all.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys

PR_SET_PDEATHSIG = 1
_state: dict = {"installed": False, "parent": None, "active": False}


def _libc():
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None


def _before_fork() -> None:
    _state["parent"] = os.getpid()


def _after_fork_in_child() -> None:
    libc = _state.get("libc")
    if libc is None or not _state["active"]:
        return
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    # The parent may have died between fork and prctl: then nobody would ever signal us.
    if _state["parent"] is not None and os.getppid() != _state["parent"]:
        os._exit(1)


def tie_children(active: bool) -> None:
    """Turn the hook on or off (hooks cannot be unregistered): off once the command that wanted it ends."""
    _state["active"] = active


def children_die_with_parent() -> bool:
    """Install the fork hook once (Linux only); returns whether children are now tied to us."""
    if _state["installed"]:
        tie_children(True)
        return True
    if not sys.platform.startswith("linux"):
        return False
    libc = _libc()
    if libc is None:
        return False
    _state.update(installed=True, libc=libc, active=True)
    os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)
    return True
