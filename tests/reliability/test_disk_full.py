"""A full disk while a stage saves: one line saying so with the stage's path, and a rerun after space is
freed completes. The run directory lives on a small tmpfs mounted by the test (needs root)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.reliability.helpers import TINY, TRACEBACK, error_block, infir, one_step_pretrain

MODEL = one_step_pretrain(128)


@pytest.fixture
def small_disk(tmp_path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    try:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mnt)],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"cannot mount a tmpfs to fill (needs root and mount(8)): {exc}")
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs to fill (needs root): {done.stderr.strip()}")
    try:
        yield mnt
    finally:
        if subprocess.run(["umount", str(mnt)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def _fill(mnt: Path, leave_kib: int) -> Path:
    free = shutil.disk_usage(mnt).free
    filler = mnt / "filler"
    with filler.open("wb") as f:
        f.truncate(0)
        # tmpfs allocates on write, so the filler is written, not merely sized.
        chunk = b"\0" * (1 << 16)
        remaining = free - leave_kib * 1024
        while remaining > 0:
            f.write(chunk[: min(len(chunk), remaining)])
            remaining -= len(chunk)
    return filler


def test_pretrain_on_a_full_disk_says_so_and_reruns_after_space_is_freed(tokenized, small_disk):
    run = small_disk / "run"
    run.mkdir()
    # Pretraining reads only the tokenize stage's outputs.
    shutil.copytree(tokenized / "tokenize", run / "tokenize", ignore=shutil.ignore_patterns(".lock"))
    filler = _fill(small_disk, leave_kib=600)
    out = infir("pretrain", "tiny", "--run-dir", "run", *TINY, *MODEL, cwd=small_disk)
    assert out.returncode == 1 and TRACEBACK not in out.stderr, out.stderr[-2000:]
    line = error_block(out.stderr)
    assert "no space left on device: run/pretrain" in line, line
    assert "unexpected pos" not in out.stderr

    filler.unlink()
    again = infir("pretrain", "tiny", "--run-dir", "run", *TINY, *MODEL, cwd=small_disk)
    assert again.returncode == 0, again.stderr[-2000:]
    assert (run / "pretrain" / "_COMPLETE").is_file() and (run / "pretrain" / "final").is_dir()
    assert not (run / "pretrain" / "error.log").exists()
