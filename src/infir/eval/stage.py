"""The recipe's eval stage: evaluate the final checkpoint of every trained stage on the configured tasks.

Training stages leave a Hugging Face model and tokenizer in `<run-dir>/<stage>/final/`. For each one this
stage writes `<stage_dir>/<trained-stage>/<task>.samples.jsonl` and returns

    {"results": {trained_stage: {task: {metric: value, "n": N}}},
     "intervals": {trained_stage: {task: {"accuracy", "stderr", "ci95": [lo, hi], "n"}}},
     "gains": {task: [{"from", "to", "diff", "stderr", "z", "improved", "regressed"}]},
     "chat": {...}, "primary_metric": {...},
     "samples": {trained_stage: {task: [a few samples for the report]}}, "cached": [...],
     "checkpoints": {...}}

A checkpoint already evaluated with the same eval settings is not evaluated again: results are cached
per checkpoint fingerprint (file names, sizes and modification times of `final/`) under
`<stage_dir>/cache/`.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from infir.eval.config import EvalConfig
from infir.eval.runner import build_task, evaluate_model, samples_file_name
from infir.eval.stats import compare_stages, correctness_by_doc
from infir.run import FINAL, StageContext, read_json, write_json
from infir.stages import text_checkpoint_stages

log = logging.getLogger("infir.eval")


def checkpoint_fingerprint(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        stat = path.stat()
        h.update(f"{path.relative_to(folder)}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def settings_fingerprint(cfg: EvalConfig, chat: bool) -> str:
    relevant = {
        "tasks": [t.model_dump(mode="json") for t in cfg.tasks],
        "chat": chat,
        "seed": cfg.seed,
        "backend": cfg.backend,
        "dtype": cfg.dtype,
    }
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


def stages_to_evaluate(ctx: StageContext, cfg: EvalConfig) -> list[str]:
    if cfg.stages is not None:
        for stage in cfg.stages:
            ctx.output_of(stage)  # fails clearly when a requested stage has not completed
        return list(cfg.stages)
    return [s for s in text_checkpoint_stages() if ctx.has_checkpoint(s)]


def _uncertainty(stage_dir: Path, stages: list[str], cfg: EvalConfig) -> tuple[dict, dict]:
    """Per task: each stage's accuracy with its 95% interval, and each stage's paired gain over the stage
    evaluated before it (same problems), for tasks scored right/wrong per problem."""
    intervals: dict = {}
    gains: dict = {}
    for task in cfg.tasks:
        per_stage = {}
        for stage in stages:
            correct = correctness_by_doc(stage_dir / stage / samples_file_name(task.name))
            if correct is not None:
                per_stage[stage] = correct
        if not per_stage:
            continue
        task_intervals, task_gains = compare_stages(per_stage)
        for stage, summary in task_intervals.items():
            intervals.setdefault(stage, {})[task.name] = summary
        gains[task.name] = task_gains
    return intervals, gains


def _head(path: Path, k: int) -> list[dict]:
    if k <= 0 or not path.exists():
        return []
    with path.open() as f:
        return [json.loads(line) for _, line in zip(range(k), f)]


def evaluate_checkpoint(model_dir: Path, out_dir: Path, cfg: EvalConfig, chat: bool) -> dict[str, Any]:
    from infir.eval.backends import load_backend  # imported here: it pulls in torch

    backend = load_backend(cfg.backend, model_dir, cfg.device, cfg.dtype)
    return evaluate_model(
        backend,
        cfg.tasks,
        chat=chat,
        batch_size=cfg.batch_size,
        samples_dir=out_dir,
        sandbox_workers=cfg.sandbox_workers,
        seed=cfg.seed,
    )


def run(ctx: StageContext) -> dict:
    cfg: EvalConfig = ctx.recipe.eval
    stages = stages_to_evaluate(ctx, cfg)
    if not stages:
        raise FileNotFoundError(
            f"eval: no trained stage with a final checkpoint in {ctx.run_dir} "
            f"(looked for {', '.join(f'{s}/{FINAL}' for s in text_checkpoint_stages())})"
        )
    results, samples, cached, checkpoints, chat_modes = {}, {}, [], {}, {}
    metrics_log = ctx.metrics_logger()
    for stage in stages:
        model_dir = ctx.checkpoint_of(stage)
        chat = cfg.chat_for(stage)
        key = f"{checkpoint_fingerprint(model_dir)}-{settings_fingerprint(cfg, chat)}"
        cache_file = ctx.stage_dir / "cache" / f"{stage}-{key}.json"
        out_dir = ctx.stage_dir / stage
        if cache_file.exists() and all((out_dir / samples_file_name(t.name)).exists() for t in cfg.tasks):
            log.info("eval: %s unchanged since the last evaluation (%s); reusing its results", stage, key)
            stage_results = read_json(cache_file)["results"]
            cached.append(stage)
        else:
            log.info("eval: %s (%s prompts) from %s", stage, "chat" if chat else "base", model_dir)
            stage_results = evaluate_checkpoint(model_dir, out_dir, cfg, chat)
            write_json(cache_file, {"checkpoint": str(model_dir), "results": stage_results})
        results[stage] = stage_results
        checkpoints[stage] = key
        chat_modes[stage] = chat
        samples[stage] = {t: _head(out_dir / samples_file_name(t), cfg.show_samples) for t in stage_results}
        metrics_log.log(
            {"stage": stage, **{f"{t}/{m}": v for t, ms in stage_results.items() for m, v in ms.items()}}
        )
    primary = {t.name: build_task(t).primary_metric for t in cfg.tasks}
    intervals, gains = _uncertainty(ctx.stage_dir, stages, cfg)
    return {
        "results": results,
        "intervals": intervals,
        "gains": gains,
        "chat": chat_modes,
        "primary_metric": primary,
        "samples": samples,
        "cached": cached,
        "checkpoints": checkpoints,
    }
