"""The stage table: what each stage reads, which config sections fingerprint it, what runs it.

Stage modules are imported only when their stage runs, so `infir --help` and `--dry-run` stay fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from infir.config import STAGE_ORDER, TRAINING_STAGES
from infir.run import Stage, StageContext

if TYPE_CHECKING:
    from infir.config import Recipe


def _lazy(module: str, attr: str = "run"):
    def call(ctx: StageContext) -> dict:
        return getattr(importlib.import_module(module), attr)(ctx)

    call.__qualname__ = f"{module}.{attr}"
    return call


def _present(recipe: "Recipe", names) -> tuple[str, ...]:
    return tuple(n for n in names if n in recipe.stages)


def _curate_inputs(recipe: "Recipe") -> list[str]:
    files = []
    for src in recipe.curate.sources:
        for attr in ("path", "paths"):
            value = getattr(src, attr, None)
            if isinstance(value, str):
                files.append(value)
            elif isinstance(value, list):
                files.extend(value)
    return files


def _sft_needs(recipe: "Recipe") -> tuple[str, ...]:
    init = recipe.sft.init_from
    before = [s for s in ("anneal", "pretrain") if s in recipe.stages]
    start = (before[:1] if init == "auto" else [init] if init in TRAINING_STAGES else [])
    return tuple(start) + _present(recipe, ("tokenize", "synth"))


def _rl_needs(recipe: Recipe) -> tuple[str, ...]:
    from infir.rl.config import start_stage

    start = start_stage(recipe.rl.init_from, recipe.stages)
    return (start,) if start else ()


def _vl_needs(recipe: "Recipe") -> tuple[str, ...]:
    # The language model comes from SFT (`language_model: auto`), else a fresh one on the run's tokenizer.
    lm = ("sft",) if recipe.vl.language_model == "auto" else ()
    return _present(recipe, lm + ("tokenize",))


STAGES: dict[str, Stage] = {s.name: s for s in [
    Stage("inputs", ("inputs",), (), _lazy("infir.inputs.stage"), resumable=True, keep=("cache",),
          input_files=lambda r: r.inputs.input_files(),
          help="draw recall seeds and LLM quality annotations where curate reads them"),
    Stage("curate", ("curate", "seed"), lambda r: _present(r, ("inputs",)), _lazy("infir.curate.stage"),
          resumable=True,
          input_files=_curate_inputs, help="filter, recall, dedup, score and decontaminate raw corpora"),
    Stage("tokenize", ("tokenizer", "tokenize", "seed"), lambda r: _present(r, ("curate",)),
          _lazy("infir.tokenize.stage"), resumable=True,
          help="train or load the tokenizer; write token shards and the mixtures"),
    Stage("pretrain", ("model", "pretrain", "seed"), lambda r: _present(r, ("tokenize",)),
          _lazy("infir.train.stage", "run_pretrain"), resumable=True, all_ranks=True,
          help="(continual) pretraining on the pretraining mix"),
    Stage("anneal", ("anneal", "seed"), lambda r: _present(r, ("pretrain", "tokenize")),
          _lazy("infir.train.stage", "run_anneal"), resumable=True, all_ranks=True,
          help="decay the learning rate to zero on the annealing mix"),
    Stage("synth", ("synth", "seed"), lambda r: _present(r, r.synth.stage_models()), _lazy("infir.synth.stage"),
          resumable=True, input_files=lambda r: r.synth.input_files(),
          help="synthesize verified SFT data: evolve seeds, sample a teacher, verify, score, select"),
    Stage("sft", ("sft", "seed"), _sft_needs, _lazy("infir.sft.stage"), resumable=True, all_ranks=True,
          help="supervised fine-tuning on conversations, assistant-only loss, packed"),
    Stage("rl", ("rl", "seed"), _rl_needs, _lazy("infir.rl.stage"), resumable=True,
          help="GRPO with verifiable rewards (task checker + format) from the SFT model"),
    Stage("vl", ("vl", "seed"), _vl_needs, _lazy("infir.vl.stage"), resumable=True,
          help="image-text filter, then the four-stage vision-language curriculum (alignment to reasoning)"),
    Stage("eval", ("eval", "seed"), lambda r: _present(r, TRAINING_STAGES), _lazy("infir.eval.stage"),
          resumable=True, keep=("cache",), help="evaluate each trained stage's checkpoint"),
    Stage("export", ("export",), lambda r: _present(r, TRAINING_STAGES), _lazy("infir.export.stage"),
          help="GGUF (f16/q8_0/q4_0) + bf16 safetensors of the last trained checkpoint, and the edge benchmark"),
    Stage("report", ("report",), lambda r: tuple(s for s in r.stages if s != "report"),
          _lazy("infir.report.stage"), help="write <run-dir>/report/index.html"),
]}

assert set(STAGES) <= set(STAGE_ORDER)
