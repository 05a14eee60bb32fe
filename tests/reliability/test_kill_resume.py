"""SIGKILL a resumable stage at random points, rerun it, and get the bytes of an uninterrupted run."""

from __future__ import annotations

import json
import random
import shutil
import signal
import time
from pathlib import Path

from tests.reliability.helpers import TINY, infir, spawn

# Bookkeeping that legitimately differs between runs: times, and the markers holding them.
VOLATILE_FILES = {"_STARTED", "_COMPLETE", ".lock", "error.log"}
VOLATILE_KEYS = {"seconds", "tokens_per_s", "started", "finished"}


def _strip(obj):
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if k not in VOLATILE_KEYS}
    if isinstance(obj, list):
        return [_strip(v) for v in obj]
    return obj


def _contents(stage_dir: Path) -> dict[str, bytes | object]:
    out: dict[str, bytes | object] = {}
    for path in sorted(stage_dir.rglob("*")):
        if path.is_file() and path.name not in VOLATILE_FILES:
            rel = str(path.relative_to(stage_dir))
            out[rel] = _strip(json.loads(path.read_text())) if path.suffix == ".json" else path.read_bytes()
    return out


def test_tokenize_killed_at_random_points_resumes_to_identical_outputs(curated, tmp_path):
    for name in ("whole", "killed"):
        shutil.copytree(curated, tmp_path / name / "run", ignore=shutil.ignore_patterns(".lock"))
    t0 = time.time()
    whole = infir("tokenize", "tiny", "--run-dir", "run", *TINY, cwd=tmp_path / "whole")
    duration = time.time() - t0
    assert whole.returncode == 0, whole.stderr[-2000:]

    rng = random.Random(22)
    kills = 0
    for _ in range(5):
        proc = spawn("tokenize", "tiny", "--run-dir", "run", *TINY, cwd=tmp_path / "killed")
        time.sleep(rng.uniform(0.4, 1.0) * duration)
        if proc.poll() is not None:
            break  # finished before the kill: the later rerun must still skip to the same outputs
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
    assert kills, "no run was killed: the stage finished before every kill point"
    rerun = infir("tokenize", "tiny", "--run-dir", "run", *TINY, cwd=tmp_path / "killed")
    assert rerun.returncode == 0, rerun.stderr[-2000:]

    expected = _contents(tmp_path / "whole" / "run" / "tokenize")
    got = _contents(tmp_path / "killed" / "run" / "tokenize")
    assert sorted(got) == sorted(expected)
    different = [name for name in expected if got[name] != expected[name]]
    assert different == []
