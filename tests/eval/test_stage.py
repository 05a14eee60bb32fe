"""EvalConfig validation and the recipe stage: every trained checkpoint evaluated, samples saved, cache."""

from __future__ import annotations

import json
import os
import shutil
from types import SimpleNamespace

import pytest
from pydantic import ValidationError

from infir.eval.config import EvalConfig, TaskSpec
from infir.eval.stage import run
from infir.run import MARKER, Stage, StageContext, write_json


def test_config_defaults_and_shorthands():
    cfg = EvalConfig(tasks=["reasoning", {"name": "gsm8k", "limit": 5, "data_path": "x"}])
    assert [t.name for t in cfg.tasks] == ["reasoning", "gsm8k"] and cfg.tasks[1].limit == 5
    assert cfg.chat_for("pretrain") is False and cfg.chat_for("sft") is True
    assert EvalConfig(chat={"sft": False}).chat_for("sft") is False
    assert EvalConfig().tasks[0].name == "reasoning"


@pytest.mark.parametrize(
    "bad,match",
    [
        ({"tasks": ["gsm9k"]}, "unknown task 'gsm9k'"),
        ({"stages": ["curate"]}, "not a trained stage"),
        ({"chat": {"eval": True}}, "unknown stage"),
        ({"tasks": [{"name": "humaneval", "num_samples": 5}]}, "needs temperature"),
        ({"batch_sizes": 3}, "Extra inputs"),
    ],
)
def test_config_errors_name_the_field(bad, match):
    with pytest.raises(ValidationError, match=match):
        EvalConfig(**bad)


def test_family_task_names_validate():
    assert TaskSpec(name="rg:leg_counting").name == "rg:leg_counting"
    assert TaskSpec(name="reasoning:chain_sum", options={"n": 3}).options == {"n": 3}


def _trained(run_dir, stage, model_dir):
    shutil.copytree(model_dir, run_dir / stage / "final")
    write_json(run_dir / stage / MARKER, {"fingerprint": "test", "finished": 0})


def _context(run_dir, cfg):
    stage = Stage(name="eval", sections=("eval",), needs=(), fn=run)
    return StageContext(recipe=SimpleNamespace(eval=cfg), run_dir=run_dir, stage=stage)


def test_stage_evaluates_each_trained_checkpoint_and_caches(tmp_path, tiny_model_dir):
    run_dir = tmp_path / "run"
    _trained(run_dir, "pretrain", tiny_model_dir)
    _trained(run_dir, "sft", tiny_model_dir)
    (run_dir / "anneal").mkdir(parents=True)  # started but never completed: not evaluated
    cfg = EvalConfig(
        tasks=[{"name": "reasoning", "options": {"n": 2}, "max_new_tokens": 8}], batch_size=4, show_samples=2
    )
    ctx = _context(run_dir, cfg)
    summary = run(ctx)
    assert list(summary["results"]) == ["pretrain", "sft"]
    assert summary["chat"] == {"pretrain": False, "sft": True}
    metrics = summary["results"]["pretrain"]["reasoning"]
    assert metrics["n"] == 6 and 0.0 <= metrics["accuracy"] <= 1.0
    assert summary["primary_metric"] == {"reasoning": "accuracy"} and summary["cached"] == []
    lines = (ctx.stage_dir / "sft" / "reasoning.samples.jsonl").read_text().splitlines()
    record = json.loads(lines[0])
    assert len(lines) == 6 and {"prompt", "output", "extracted", "correct", "doc_index"} <= set(record)
    assert "<|user|>" in record["prompt"]  # sft is prompted through the chat template
    base = json.loads((ctx.stage_dir / "pretrain" / "reasoning.samples.jsonl").read_text().splitlines()[0])
    assert base["prompt"].startswith("Question: ") and base["prompt"].endswith("\nAnswer:")
    assert len(summary["samples"]["sft"]["reasoning"]) == 2
    interval = summary["intervals"]["sft"]["reasoning"]
    assert interval["n"] == 6 and interval["accuracy"] == summary["results"]["sft"]["reasoning"]["accuracy"]
    assert interval["ci95"][0] <= interval["accuracy"] <= interval["ci95"][1]
    (gain,) = summary["gains"]["reasoning"]
    assert (gain["from"], gain["to"], gain["n"]) == ("pretrain", "sft", 6)
    assert gain["diff"] == pytest.approx(interval["accuracy"] - metrics["accuracy"])
    assert json.loads((ctx.stage_dir / "metrics.jsonl").read_text().splitlines()[0])["stage"] == "pretrain"

    again = run(ctx)
    assert again["cached"] == ["pretrain", "sft"] and again["results"] == summary["results"]
    weights = next((run_dir / "sft" / "final").glob("*.safetensors"))
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))
    assert run(ctx)["cached"] == ["pretrain"]  # sft's checkpoint changed: evaluated again


def test_stage_without_checkpoints_fails_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match="no trained stage"):
        run(_context(tmp_path, EvalConfig()))
    with pytest.raises(FileNotFoundError, match="has not completed"):
        run(_context(tmp_path, EvalConfig(stages=["sft"])))
