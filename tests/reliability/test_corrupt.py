"""Corrupt what the next stage reads: the error names the file, on one line, without a traceback."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.reliability.helpers import TINY, TRACEBACK, error_block, infir, one_step_pretrain

TINY_MODEL = one_step_pretrain(32)


@pytest.fixture
def run(tokenized, tmp_path) -> Path:
    shutil.copytree(tokenized, tmp_path / "run", ignore=shutil.ignore_patterns(".lock"))
    return tmp_path / "run"


def _train_shard(run: Path) -> Path:
    return sorted((run / "tokenize" / "shards").glob("*/*.bin"))[0]


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_a_damaged_token_shard_is_named(run, damage):
    shard = _train_shard(run)
    data = bytearray(shard.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0xFF
        shard.write_bytes(bytes(data))
    else:
        shard.write_bytes(bytes(data[: len(data) // 2]))
    out = infir("pretrain", "tiny", "--run-dir", "run", *TINY, *TINY_MODEL, cwd=run.parent)
    assert out.returncode == 1 and TRACEBACK not in out.stderr
    line = error_block(out.stderr)
    assert "stage 'pretrain' failed" in line and str(shard.relative_to(run.parent)) in line
    assert ("checksum" if damage == "flip" else "truncated") in line


@pytest.mark.parametrize("content", [b'{"tokenizer": {', b"\x00\xff\xfe garbage"])
def test_a_corrupt_summary_json_is_named(run, content):
    summary = run / "tokenize" / "summary.json"
    summary.write_bytes(content)
    report = infir("report", "run", cwd=run.parent)
    rerun = infir(
        "tokenize", "tiny", "--run-dir", "run", *TINY, cwd=run.parent
    )  # complete: reads its summary
    for out in (report, rerun):
        assert out.returncode == 1 and TRACEBACK not in out.stderr
        line = error_block(out.stderr)
        assert "run/tokenize/summary.json is corrupt" in line, line


@pytest.mark.parametrize(
    "content,problem",
    [
        (b"name: tiny\nstages: [curate\n", "not valid YAML"),
        (b"name: \xff\xfe\x00\n", "not UTF-8"),
        (b"- just\n- a list\n", "top level must be a mapping"),
    ],
)
def test_a_corrupt_resolved_recipe_is_named(run, content, problem):
    (run / "recipe.yaml").write_bytes(content)
    out = infir("pretrain", "run/recipe.yaml", "--run-dir", "run", cwd=run.parent)
    assert out.returncode == 2 and TRACEBACK not in out.stderr
    line = error_block(out.stderr)
    assert "run/recipe.yaml" in line and problem in line


def test_a_corrupt_completion_marker_is_named(run):
    (run / "curate" / "_COMPLETE").write_text('{"fingerprint": ')
    out = infir("tokenize", "tiny", "--run-dir", "run", *TINY, cwd=run.parent)
    assert out.returncode == 1 and TRACEBACK not in out.stderr
    assert "run/curate/_COMPLETE is corrupt" in error_block(out.stderr)
    json.loads((run / "tokenize" / "_STARTED").read_text())  # untouched bookkeeping stays valid


def test_a_corrupt_metrics_line_is_named_by_the_report(run):
    metrics = run / "pretrain" / "metrics.jsonl"
    metrics.parent.mkdir(exist_ok=True)
    metrics.write_text('{"step": 1, "loss": 5.0}\n{"step": 2, "lo\n')
    out = infir("report", "run", cwd=run.parent)
    assert out.returncode == 1 and TRACEBACK not in out.stderr
    assert "run/pretrain/metrics.jsonl is corrupt (line 2" in error_block(out.stderr)
