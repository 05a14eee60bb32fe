"""Two processes on one run directory: the second stops at once, naming the holder; a killed holder
leaves nothing stuck."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from infir.lock import LockError, acquire
from tests.reliability.helpers import TRACEBACK, SilentServer, env, error_block, infir, spawn

HOLD = """
import sys, time
from infir.lock import acquire
acquire(sys.argv[1], command="holder-under-test")
print("held", flush=True)
time.sleep(600)
"""


def hold(directory: Path) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(directory)], stdout=subprocess.PIPE, text=True, env=env()
    )
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_second_acquire_names_the_holder_and_a_killed_holder_frees_the_lock(tmp_path):
    holder = hold(tmp_path / "run")
    try:
        with pytest.raises(LockError) as err:
            acquire(tmp_path / "run")
        message = str(err.value)
        assert f"is in use by pid {holder.pid} on host {socket.gethostname()} since " in message
        assert "holder-under-test" in message
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    lock = acquire(tmp_path / "run")  # SIGKILL left no stale lock
    assert json.loads((tmp_path / "run" / ".lock").read_text())["pid"] == os.getpid()
    lock.release()


def test_two_stage_commands_on_one_run_dir(tmp_path):
    """A real holder (synth waiting on a teacher that never answers) and two more commands."""
    with SilentServer() as server:
        first = spawn(
            "synth",
            "tiny",
            "--run-dir",
            "run",
            "synth.teacher.type=openai",
            f"synth.teacher.base_url={server.url}",
            "synth.teacher.model=m",
            "synth.evolve.rounds=0",
            cwd=tmp_path,
        )
        try:
            deadline = time.time() + 60
            while not server.accepted and time.time() < deadline and first.poll() is None:
                time.sleep(0.1)
            assert server.accepted, first.communicate(timeout=5)[1][-2000:]
            for stage in ("tokenize", "pretrain"):
                t0 = time.time()
                second = infir(stage, "tiny", "--run-dir", "run", "pretrain.max_steps=3", cwd=tmp_path)
                assert time.time() - t0 < 30 and second.returncode == 2
                line = error_block(second.stderr)
                assert f"run is in use by pid {first.pid} on host {socket.gethostname()} since" in line, line
                assert "infir synth tiny --run-dir run" in line and TRACEBACK not in second.stderr
            assert not (tmp_path / "run" / "pretrain").exists()  # the loser wrote nothing
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait()
    after = infir("report", "tiny", "--run-dir", "run", cwd=tmp_path)
    assert "in use" not in after.stderr and after.returncode == 0, after.stderr[-2000:]


def test_torchrun_ranks_other_than_zero_do_not_take_the_lock(tmp_path):
    holder = hold(tmp_path / "run")
    try:
        # Rank 1 of the holder's job must get past the lock (and fail later, on the missing upstream).
        rank1 = infir("tokenize", "tiny", "--run-dir", "run", cwd=tmp_path, RANK="1")
        rank0 = infir("tokenize", "tiny", "--run-dir", "run", cwd=tmp_path, RANK="0")
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert "in use" not in rank1.stderr and "needs the output of 'curate'" in rank1.stderr
    assert rank0.returncode == 2 and "in use by pid" in rank0.stderr


def test_two_direct_curates_on_one_output_folder(tmp_path):
    (tmp_path / "docs.jsonl").write_text('{"text": "some text"}\n')
    holder = hold(tmp_path / "out")
    try:
        second = infir("curate", "--input", "docs.jsonl", "--output", "out", cwd=tmp_path)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert second.returncode == 2 and TRACEBACK not in second.stderr
    assert f"out is in use by pid {holder.pid}" in error_block(second.stderr)
