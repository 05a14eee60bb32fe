"""The run-directory contract: markers, fingerprints, skip / rerun / resume."""

import json

import pytest

from infir.config import load_recipe
from infir.run import MARKER, Stage, fingerprint, is_complete, run_stage


def _stage(name, calls, needs=(), resumable=False, fail=False, input_files=None):
    def fn(ctx):
        calls.append(name)
        (ctx.stage_dir / "partial.txt").write_text("x")
        if fail:
            raise RuntimeError("killed halfway")
        return {"ok": 1}

    return Stage(name, ("pretrain",), needs, fn, resumable=resumable, input_files=input_files)


def test_stage_writes_config_summary_marker_and_skips_when_unchanged(tmp_path):
    recipe, calls = load_recipe("tiny"), []
    stage = _stage("a", calls)
    run_stage(recipe, stage, tmp_path, log=lambda m: None)
    assert (tmp_path / "a" / "config.yaml").exists() and (tmp_path / "a" / MARKER).exists()
    assert json.loads((tmp_path / "a" / "summary.json").read_text())["ok"] == 1
    run_stage(recipe, stage, tmp_path, log=lambda m: None)
    assert calls == ["a"]
    run_stage(recipe, stage, tmp_path, force=True, log=lambda m: None)
    assert calls == ["a", "a"]


def test_config_change_or_upstream_change_reruns(tmp_path):
    calls = []
    up, down = _stage("up", calls), _stage("down", calls, needs=("up",))
    r1 = load_recipe("tiny")
    for s in (up, down):
        run_stage(r1, s, tmp_path, log=lambda m: None)
    r2 = load_recipe("tiny", ["pretrain.max_steps=7"])
    assert not is_complete(r2, up, tmp_path)
    run_stage(r2, up, tmp_path, log=lambda m: None)
    assert not is_complete(r2, down, tmp_path)  # upstream fingerprint changed
    assert fingerprint(r1, up, tmp_path) != fingerprint(r2, up, tmp_path)


def test_an_input_file_change_reruns(tmp_path):
    src = tmp_path / "raw.jsonl"
    src.write_text("{}\n")
    recipe, calls = load_recipe("tiny"), []
    stage = _stage("c", calls, input_files=lambda r: [str(src)])
    run_stage(recipe, stage, tmp_path / "run", log=lambda m: None)
    assert is_complete(recipe, stage, tmp_path / "run")
    src.write_text("{}\n{}\n")
    assert not is_complete(recipe, stage, tmp_path / "run")


def test_killed_stage_has_no_marker_and_non_resumable_restarts_clean(tmp_path):
    recipe, calls = load_recipe("tiny"), []
    with pytest.raises(RuntimeError):
        run_stage(recipe, _stage("k", calls, fail=True), tmp_path, log=lambda m: None)
    assert not (tmp_path / "k" / MARKER).exists()
    (tmp_path / "k" / "stale.txt").write_text("from the killed run")
    run_stage(recipe, _stage("k", calls), tmp_path, log=lambda m: None)
    assert not (tmp_path / "k" / "stale.txt").exists()


def test_resumable_stage_keeps_partial_outputs_of_a_killed_run(tmp_path):
    recipe, calls = load_recipe("tiny"), []
    with pytest.raises(RuntimeError):
        run_stage(recipe, _stage("r", calls, resumable=True, fail=True), tmp_path, log=lambda m: None)
    (tmp_path / "r" / "checkpoint.txt").write_text("progress")
    # Atomic writes the kill cut short before their rename, at the top and deeper down.
    (tmp_path / "r" / ".config.yaml.tmp-7144").write_text("half a config")
    (tmp_path / "r" / "shards").mkdir()
    (tmp_path / "r" / "shards" / ".index.json.tmp-7144").write_text("{")
    run_stage(recipe, _stage("r", calls, resumable=True), tmp_path, log=lambda m: None)
    assert (tmp_path / "r" / "checkpoint.txt").read_text() == "progress"
    assert sorted(p.name for p in (tmp_path / "r").rglob(".*")) == []


def test_needing_an_incomplete_stage_fails_clearly(tmp_path):
    recipe = load_recipe("tiny")

    def fn(ctx):
        return {"x": str(ctx.output_of("curate"))}

    with pytest.raises(FileNotFoundError, match="needs the output of 'curate'"):
        run_stage(recipe, Stage("t", ("pretrain",), ("curate",), fn), tmp_path, log=lambda m: None)


def test_a_killed_resumable_stage_restarts_clean_when_its_config_changed(tmp_path):
    calls = []
    with pytest.raises(RuntimeError):
        run_stage(
            load_recipe("tiny"), _stage("r", calls, resumable=True, fail=True), tmp_path, log=lambda m: None
        )
    (tmp_path / "r" / "checkpoint.txt").write_text("progress of other work")
    run_stage(
        load_recipe("tiny", ["pretrain.max_steps=9"]),
        _stage("r", calls, resumable=True),
        tmp_path,
        log=lambda m: None,
    )
    assert not (tmp_path / "r" / "checkpoint.txt").exists()


def test_kept_subpaths_survive_a_rerun(tmp_path):
    calls = []

    def fn(ctx):
        calls.append(1)
        (ctx.stage_dir / "cache").mkdir(exist_ok=True)
        (ctx.stage_dir / "cache" / f"entry{len(calls)}").write_text("x")
        (ctx.stage_dir / "scratch.txt").write_text("x")
        return {}

    stage = Stage("e", ("pretrain",), (), fn, keep=("cache",))
    run_stage(load_recipe("tiny"), stage, tmp_path, log=lambda m: None)
    run_stage(load_recipe("tiny", ["pretrain.max_steps=3"]), stage, tmp_path, log=lambda m: None)
    assert sorted(p.name for p in (tmp_path / "e" / "cache").iterdir()) == ["entry1", "entry2"]
