"""SIGKILL a resumable stage at random points, rerun it, and get the bytes of an uninterrupted run."""

from __future__ import annotations

import json
import random
import shutil
import signal
import time
from pathlib import Path

from tests.reliability.helpers import TINY, infir, spawn

# Bookkeeping that legitimately differs between runs: times, the markers holding them, and how much
# work a resumed run found already done.
VOLATILE_FILES = {"_STARTED", "_COMPLETE", ".lock", "error.log"}
VOLATILE_KEYS = {"seconds", "tokens_per_s", "started", "finished", "jobs_reused"}


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
    whole = infir("tokenize", "tiny", "--run-dir", "run", *TINY, cwd=tmp_path / "whole")
    assert whole.returncode == 0, whole.stderr[-2000:]

    # Kill points are moments of the stage's own progress (polled every few ms), picked at random:
    # right after it starts, while or after it trains the tokenizer, between shard jobs.
    stage = tmp_path / "killed" / "run" / "tokenize"
    points = [
        ("started", lambda: (stage / "_STARTED").exists()),
        ("tokenizer saved", lambda: (stage / "tokenizer" / "tokenizer.json").exists()),
        ("tokenizer recorded", lambda: (stage / "_tokenizer_done.json").exists()),
        ("first shard job", lambda: len(list((stage / "shards" / "_jobs").glob("*.json"))) >= 1),
        ("second shard job", lambda: len(list((stage / "shards" / "_jobs").glob("*.json"))) >= 2),
    ]
    rng = random.Random(22)
    chosen = sorted(rng.sample(range(len(points)), 3))
    killed_at = []
    for index in chosen:
        name, reached = points[index]
        proc = spawn("tokenize", "tiny", "--run-dir", "run", *TINY, cwd=tmp_path / "killed")
        while proc.poll() is None and not reached():
            time.sleep(0.005)
        if proc.poll() is not None:
            continue  # done before this point: the rerun below must skip to the same outputs
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if not (stage / "_COMPLETE").exists():
            killed_at.append(name)
    assert killed_at, "every run finished its stage before its kill point"
    rerun = infir("tokenize", "tiny", "--run-dir", "run", *TINY, cwd=tmp_path / "killed")
    assert rerun.returncode == 0, rerun.stderr[-2000:]

    expected = _contents(tmp_path / "whole" / "run" / "tokenize")
    got = _contents(tmp_path / "killed" / "run" / "tokenize")
    assert sorted(got) == sorted(expected)
    different = [name for name in expected if got[name] != expected[name]]
    assert different == []
