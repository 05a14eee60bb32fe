"""`infir curate` killed while datatrove's workers run: none of its child processes outlives it."""

from __future__ import annotations

import os
import signal
import sys
import time

import pytest

from tests.reliability.helpers import TINY, children_of, group_members, spawn, start_time

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="reads /proc; the fix is Linux's"
)


def _wait_for_children(proc, want: int, timeout: float = 90) -> dict[int, str]:
    deadline = time.time() + timeout
    seen: dict[int, str] = {}
    while time.time() < deadline and proc.poll() is None:
        for pid in children_of(proc.pid):
            st = start_time(pid)
            if st is not None:
                seen[pid] = st
        if len([p for p, st in seen.items() if start_time(p) == st]) >= want:
            return {p: st for p, st in seen.items() if start_time(p) == st}
        time.sleep(0.05)
    raise AssertionError(f"curate never had {want} live children (exit {proc.poll()})")


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_no_child_outlives_a_killed_curate(tmp_path, sig):
    # Its own process group, so every descendant is found (and cleaned up) even once reparented to init.
    proc = spawn(
        "curate", "tiny", "--run-dir", "run", *TINY, "curate.workers=2", cwd=tmp_path, new_session=True
    )
    try:
        _wait_for_children(proc, want=2)
        proc.send_signal(sig)
        proc.wait(timeout=30)
        deadline = time.time() + 5
        alive = group_members(proc.pid)
        while alive and time.time() < deadline:
            time.sleep(0.1)
            alive = group_members(proc.pid)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if group_members(proc.pid):
            os.killpg(
                proc.pid, signal.SIGKILL
            )  # leftovers of this test (the bug under test): do not leak them
    assert alive == [], f"processes of the killed curate still running: {sorted(alive)}"
    if sig == signal.SIGTERM:
        assert proc.returncode == 143
