"""The stage table: the one source of stage facts.

Per stage: its place in the pipeline, what it reads, which config sections fingerprint it, what runs it,
whether it trains a model (a checkpoint in `<stage>/final`), whether that model answers chat prompts, and
where its weights start. Everything else (the recipe's stage order, the stages eval evaluates and export
exports, what `auto` starts from, which stage names a recipe field may use for "this run's checkpoint")
is derived from it here.

This module reads the recipe only by attribute and names stage modules by string (imported only when their
stage runs, so `infir --help` and `--dry-run` stay fast): it sits below every stage package, which may
import it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

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


def _start_and(*others: str):
    """Needs: the stage this one starts from (when it is one of this run's), then `others` the recipe runs."""

    def needs(recipe: "Recipe", name: str) -> tuple[str, ...]:
        start = start_stage(recipe, name)
        return ((start,) if start else ()) + _present(recipe, others)

    return needs


def _with_name(name: str, needs):
    return lambda recipe: needs(recipe, name)


_TABLE = [
    Stage(
        "inputs",
        ("inputs",),
        (),
        _lazy("infir.inputs.stage"),
        resumable=True,
        keep=("cache",),
        input_files=lambda r: r.inputs.input_files(),
        help="draw recall seeds and LLM quality annotations where curate reads them",
    ),
    Stage(
        "curate",
        ("curate", "seed"),
        lambda r: _present(r, ("inputs",)),
        _lazy("infir.curate.stage"),
        resumable=True,
        input_files=_curate_inputs,
        help="filter, recall, dedup, score and decontaminate raw corpora",
    ),
    Stage(
        "tokenize",
        ("tokenizer", "tokenize", "seed"),
        lambda r: _present(r, ("curate",)),
        _lazy("infir.tokenize.stage"),
        resumable=True,
        help="train or load the tokenizer; write token shards and the mixtures",
    ),
    Stage(
        "pretrain",
        ("model", "pretrain", "seed"),
        _with_name("pretrain", _start_and("tokenize")),
        _lazy("infir.pretrain.stage", "run_pretrain"),
        resumable=True,
        all_ranks=True,
        checkpoint=True,
        start_field="pretrain.init_from",
        help="(continual) pretraining on the pretraining mix",
    ),
    Stage(
        "anneal",
        ("anneal", "seed"),
        _with_name("anneal", _start_and("tokenize")),
        _lazy("infir.pretrain.stage", "run_anneal"),
        resumable=True,
        all_ranks=True,
        checkpoint=True,
        start_field="anneal.init_from",
        default_start="pretrain",
        help="decay the learning rate to zero on the annealing mix",
    ),
    Stage(
        "synth",
        ("synth", "seed"),
        lambda r: _present(r, r.synth.stage_models()),
        _lazy("infir.synth.stage"),
        resumable=True,
        input_files=lambda r: r.synth.input_files(),
        help="synthesize verified SFT data: evolve seeds, sample a teacher, verify, score, select",
    ),
    Stage(
        "sft",
        ("sft", "seed"),
        _with_name("sft", _start_and("tokenize", "synth")),
        _lazy("infir.sft.stage"),
        resumable=True,
        all_ranks=True,
        checkpoint=True,
        chat=True,
        start_field="sft.init_from",
        starts_from=("anneal", "pretrain"),
        help="supervised fine-tuning on conversations, assistant-only loss, packed",
    ),
    Stage(
        "rl",
        ("rl", "seed"),
        _with_name("rl", _start_and()),
        _lazy("infir.rl.stage"),
        resumable=True,
        checkpoint=True,
        chat=True,
        start_field="rl.init_from",
        starts_from=("sft", "anneal", "pretrain"),
        help="GRPO with verifiable rewards (task checker + format) from the SFT model",
    ),
    # The language model comes from SFT (`language_model: auto`), else a fresh one on the run's tokenizer.
    Stage(
        "vl",
        ("vl", "seed"),
        _with_name("vl", _start_and("tokenize")),
        _lazy("infir.vl.stage"),
        resumable=True,
        checkpoint=True,
        modality="image",
        chat=True,
        start_field="vl.language_model",
        starts_from=("sft",),
        help="image-text filter, then the four-stage vision-language curriculum (alignment to reasoning)",
    ),
    Stage(
        "eval",
        ("eval", "seed"),
        lambda r: _present(r, text_checkpoint_stages()),
        _lazy("infir.eval.stage"),
        resumable=True,
        keep=("cache",),
        help="evaluate each trained stage's checkpoint",
    ),
    Stage(
        "export",
        ("export",),
        lambda r: _present(r, checkpoint_stages()),
        _lazy("infir.export.stage"),
        help="GGUF (f16/q8_0/q4_0) + bf16 safetensors of the last trained checkpoint, and the edge benchmark",
    ),
    Stage(
        "report",
        ("report",),
        lambda r: tuple(s for s in r.stages if s != "report"),
        _lazy("infir.report.stage"),
        help="write <run-dir>/report/index.html",
    ),
]
STAGES: dict[str, Stage] = {s.name: s for s in _TABLE}
# The order stages run in; a recipe names a subsequence of it.
STAGE_ORDER: tuple[str, ...] = tuple(STAGES)


def checkpoint_stages() -> tuple[str, ...]:
    """Stages that train a model into `<stage>/final`, in pipeline order."""
    return tuple(s.name for s in _TABLE if s.checkpoint)


def text_checkpoint_stages() -> tuple[str, ...]:
    """Checkpoint stages whose model is a causal LM (what eval evaluates on text tasks by default)."""
    return tuple(s.name for s in _TABLE if s.checkpoint and s.modality == "text")


def check_starts(recipe: "Recipe") -> None:
    """A stage may start only from a checkpoint stage before it in the pipeline."""
    for stage in _TABLE:
        value = start_value(recipe, stage.name) if stage.name in recipe.stages else None
        if is_checkpoint_stage(value) and STAGE_ORDER.index(value) >= STAGE_ORDER.index(stage.name):
            raise ValueError(f"{stage.start_field}: {value!r} is not a stage before {stage.name}")


def is_checkpoint_stage(value: object) -> bool:
    """A recipe value naming this run's checkpoint of a stage: the stage name alone (`init_from: sft`)."""
    return isinstance(value, str) and value in checkpoint_stages()


def chat_by_default(stage: str) -> bool:
    return stage in STAGES and STAGES[stage].chat


def start_value(recipe: "Recipe", name: str) -> str | None:
    """What the recipe says stage `name` starts from (its `start_field`), as written."""
    field = STAGES[name].start_field
    if field is None:
        return None
    section, key = field.split(".")
    value = getattr(getattr(recipe, section), key)
    return STAGES[name].default_start if value is None else value


def start_stage(recipe: "Recipe", name: str) -> str | None:
    """The checkpoint stage of this run that stage `name` starts from; None for a path, a Hub name or none.

    `auto` takes the first of the stage's `starts_from` the recipe runs; a checkpoint stage's name is that
    stage. An unset field means the stage's `default_start` (anneal: pretrain)."""
    value = start_value(recipe, name)
    if value == "auto":
        return next((s for s in STAGES[name].starts_from if s in recipe.stages), None)
    return value if is_checkpoint_stage(value) else None


def start_of(recipe: "Recipe", name: str) -> str | None:
    """Stage `name`'s start with `auto` resolved: a stage name of this run, a path or Hub name, or None."""
    value = start_value(recipe, name)
    return start_stage(recipe, name) or (None if value == "auto" else value)


def resolve_start(ctx: StageContext, name: str | None = None) -> str | None:
    """Where stage `name` (default: the running one) starts: this run's checkpoint of its start stage
    (verified), a path or Hub name as written, or None (a model built from the recipe's model section)."""
    start = start_of(ctx.recipe, name or ctx.stage.name)
    return str(ctx.checkpoint_of(start)) if is_checkpoint_stage(start) else start
