"""The vl stage end to end at toy size: filter, two curriculum stages, evaluation, resume and skip."""

import json
import os

import pytest
import torch
import yaml

from infir.config import EMBEDDED_RECIPES, Recipe
from infir.run import StageContext, is_complete, run_stage
from infir.stages import STAGES
from infir.vl.stage import run

TOY = """
name: toy-vl
stages: [vl]
runtime: {device: cpu}
vl:
  vision: {name_or_path: filter, preset: null, hidden_size: 32, intermediate_size: 64, num_layers: 1, num_heads: 2,
           image_size: 32, patch_size: 16}
  lm: {preset: null, hidden_size: 32, num_layers: 1, num_heads: 2, intermediate_size: 64, max_position_embeddings: 256}
  tokenizer: {vocab_size: 400}
  filter:
    heldout_pairs: 20
    dual_encoder: {pairs_per_generator: 40, steps: 4, batch_size: 8, text_hidden_size: 16, text_layers: 1,
                   text_heads: 2, generators: [shapes, gui]}
  stages:
    - name: alignment
      trains: [projector]
      data: [{type: generated, generator: shapes, n: 30, kinds: [caption, count], corrupt_fraction: 0.2, filter: true}]
      train: {max_steps: 2, global_batch_size: 4, micro_batch_size: 2, seq_len: 128, log_every: 1}
    - name: reasoning
      trains: [vision, projector, language]
      data: [{type: generated, generator: gui, n: 20, kinds: [click, scroll, type]},
             {type: generated, generator: math, n: 10, image_as_text: true}]
      replay: {alignment: 0.25}
      train: {max_steps: 4, global_batch_size: 4, micro_batch_size: 4, seq_len: 128, log_every: 1, save_every: 2}
  eval:
    tasks: [{name: vl_vqa, options: {n: 3}}, {name: vl_gui, options: {n: 3}}]
    batch_size: 4
"""


def _ctx(tmp_path, text=TOY, overrides=()):
    tree = yaml.safe_load(text)
    for key, value in overrides:
        node = tree
        for k in key[:-1]:
            node = node[int(k)] if isinstance(node, list) else node[k]
        node[key[-1]] = value
    recipe = Recipe.model_validate(tree)
    ctx = StageContext(recipe=recipe, run_dir=tmp_path, stage=STAGES["vl"])
    ctx.stage_dir.mkdir(parents=True, exist_ok=True)
    return ctx


def test_vl_stage_runs_the_curriculum_and_resumes(tmp_path, capsys):
    torch.set_num_threads(1)
    # Threshold 0 keeps every pair: the 4-step dual encoder here only proves the plumbing.
    ctx = _ctx(tmp_path, overrides=[(("vl", "filter", "threshold"), 0.0)])
    summary = run_stage(ctx.recipe, STAGES["vl"], tmp_path)  # through the framework: config, summary, marker
    out = ctx.stage_dir
    assert {"config.yaml", "summary.json", "metrics.jsonl"} <= {p.name for p in out.iterdir()}
    logged = [
        json.loads(line)["curriculum_stage"] for line in (out / "metrics.jsonl").read_text().splitlines()
    ]
    assert logged[0] == "1-alignment" and logged[-1] == "2-reasoning"
    assert is_complete(ctx.recipe, STAGES["vl"], tmp_path)
    for name in ("1-alignment", "2-reasoning"):
        assert (out / name / "final" / "config.json").is_file()
        assert (out / name / "metrics.jsonl").read_text().strip()
        assert (out / name / "eval" / "vl_gui.samples.jsonl").is_file()
    assert (out / "filter" / "filter.json").is_file() and (out / "tokenizer" / "tokenizer.json").is_file()
    assert os.path.realpath(out / "final") == os.path.realpath(out / "2-reasoning" / "final")
    assert [row["stage"] for row in summary["table"]] == ["alignment", "reasoning"]
    assert set(summary["table"][0]) >= {"vl_vqa", "vl_gui", "vl_vqa_chance"}
    first, second = summary["stages"]
    assert first["trains"] == ["projector"] and first["module_lr"]["model.language_model"] == 0.0
    assert first["trainable_parameters"] < second["trainable_parameters"] == second["parameters"]
    data = first["data"]["0:shapes"]
    assert data["filter"]["corrupted"] == 6 and data["filter"]["scored"] == 30
    assert second["data"]["1:math"]["conversations"] == 10  # text-only conversations train too
    # a quarter of the mix replays alignment's filtered captions and questions: 10 beside the stage's own 30
    assert second["data"]["replay"]["alignment"]["conversations"] == 10
    assert set(second["data"]["replay"]["alignment"]["turns"]) <= {"caption", "count"}
    json.dumps(summary)  # the framework writes it as summary.json

    # The saved final checkpoint is a LLaVA checkpoint anyone loads.
    from transformers import AutoModelForImageTextToText, AutoProcessor

    model = AutoModelForImageTextToText.from_pretrained(out / "final")
    processor = AutoProcessor.from_pretrained(out / "final")
    assert model.config.model_type == "llava" and processor.tokenizer.eos_token == "<|im_end|>"

    # A rerun skips the finished stages; a killed stage resumes from its checkpoint.
    capsys.readouterr()
    run(ctx)
    assert "done, skipped" in capsys.readouterr().out
    (out / "2-reasoning" / "summary.json").unlink()
    import shutil

    shutil.rmtree(out / "2-reasoning" / "final")
    again = run(ctx)
    assert again["stages"][1]["resumed_from"] == 4  # the last checkpoint (save at the end)


def test_a_stage_with_the_filter_but_no_filter_fails_at_validation():
    tree = yaml.safe_load(TOY)
    tree["vl"]["filter"]["enabled"] = False
    tree["vl"]["vision"]["name_or_path"] = None
    with pytest.raises(ValueError, match="filter"):
        Recipe.model_validate(tree)


def test_tiny_vl_recipe_keeps_the_cpu_budget_shape():
    recipe = Recipe.model_validate(yaml.safe_load((EMBEDDED_RECIPES / "tiny-vl.yaml").read_text()))
    vl = recipe.vl
    assert vl.vision.shape()["image_size"] // vl.vision.shape()["patch_size"] <= 8  # <= 64 image tokens
    assert recipe.runtime.device == "cpu"
    # The measured run (README, "The tiny VL curriculum") fits the 20-minute CPU budget; much more would not.
    assert (
        sum(s.train.max_steps * s.train.global_batch_size * s.train.seq_len for s in vl.stages) <= 6_800_000
    )
    # The stages that train the LM after perception keep its reading in their mix.
    stages = {s.name: s for s in vl.stages}
    assert "perception" in stages["instruction"].replay and "perception" in stages["reasoning"].replay


def test_projector_output_norm_adds_its_penalty_to_every_phase_that_trains_the_projector(tmp_path):
    torch.set_num_threads(1)
    ctx = _ctx(
        tmp_path,
        overrides=[(("vl", "filter", "threshold"), 0.0), (("vl", "projector"), {"output_norm": 4.0})],
    )
    run_stage(ctx.recipe, STAGES["vl"], tmp_path)
    for name in ("1-alignment", "2-reasoning"):
        rows = [
            json.loads(line) for line in (ctx.stage_dir / name / "metrics.jsonl").read_text().splitlines()
        ]
        norms = [r["image_token_norm"] for r in rows if "image_token_norm" in r]
        assert norms and all(n > 0 for n in norms), name
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(ctx.stage_dir / "final")
    assert not hasattr(model.config, "output_norm")  # a training term: the checkpoint is plain LLaVA
