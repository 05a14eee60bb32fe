"""What `infir.cli.main` does to the process it runs in, and how it reads a full disk."""

from __future__ import annotations

import errno
import signal

import pytest

from infir import cli, guards, procs


def test_in_process_main_leaves_the_callers_signal_handlers_and_fork_hooks_as_they_were(tmp_path):
    before = signal.getsignal(signal.SIGTERM)
    assert cli.main(["report", "tiny", "--run-dir", str(tmp_path / "run")]) == 0
    assert signal.getsignal(signal.SIGTERM) is before
    assert not procs._state["active"]
    # The run directory is free again for another process once the command is over.
    from infir.lock import acquire

    acquire(tmp_path / "run").release()


@pytest.mark.parametrize(
    "exc",
    [
        OSError(errno.ENOSPC, "No space left on device"),
        RuntimeError("[enforce fail at inline_container.cc:603] . unexpected pos 1536 vs 1428"),
        RuntimeError("PytorchStreamWriter failed writing file data/3: file write failed"),
        Exception("Error while serializing: I/O error: No space left on device (os error 28)"),
    ],
)
def test_full_disk_errors_in_their_several_wordings_are_recognised(exc):
    assert guards.disk_full(exc)
    wrapped = RuntimeError("saving the checkpoint failed")
    wrapped.__cause__ = exc
    assert guards.disk_full(wrapped)


def test_other_errors_are_not_mistaken_for_a_full_disk():
    assert not guards.disk_full(OSError(errno.EACCES, "Permission denied"))
    assert not guards.disk_full(ValueError("position 3 is unexpected"))
