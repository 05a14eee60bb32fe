"""The `vl` stage: image-text filter, then InfiR-VL's four curriculum stages on the shared trainer.

<stage_dir>/
  tokenizer/             the tokenizer when the run has none (a fresh LM, no tokenize stage)
  filter/                model/ (the dual encoder, calibrated; trained when none is named, through `fit`:
                         checkpoints/, metrics.jsonl, final/ before calibration) and filter.json (its
                         precision/recall)
  1-alignment/ ...       one folder per curriculum stage: checkpoints/, metrics.jsonl, final/ (LLaVA
                         format: AutoModelForImageTextToText + AutoProcessor load it), eval/ samples,
                         summary.json (written last: a stage with it is done and is skipped on rerun)
  final -> N-<last>/final

Each curriculum stage starts from the previous stage's final checkpoint (the first from the vision
tower, a fresh projector and the language model), freezes what it does not train (module_lr 0),
trains on its packed data and is evaluated on held-out generated data. A stage killed halfway
resumes from its last checkpoint (train.save_every).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from infir.run import FINAL, StageContext, read_json, write_json
from infir.stages import resolve_start
from infir.train.fit import fit
from infir.train.parallel import barrier, init_distributed
from infir.vl.config import CurriculumPhase, VLConfig


def log(msg: str) -> None:
    print(f"[vl] {msg}", flush=True)


def resolve_tokenizer(ctx: StageContext, cfg: VLConfig, lm_path: str | None):
    from transformers import AutoTokenizer

    if lm_path is not None:
        return AutoTokenizer.from_pretrained(lm_path)
    if ctx.has_output("tokenize"):
        return AutoTokenizer.from_pretrained(ctx.output_of("tokenize") / "tokenizer")
    saved = ctx.stage_dir / "tokenizer"
    if (saved / "tokenizer.json").is_file():
        return AutoTokenizer.from_pretrained(saved)
    from infir.tokenize.tokenizer import train_tokenizer
    from infir.vl.curriculum import tokenizer_texts

    texts = tokenizer_texts(cfg.stages, ctx.recipe.seed)
    train_tokenizer(texts, cfg.tokenizer, saved, log=log)
    return AutoTokenizer.from_pretrained(saved)


def vision_image_size(cfg: VLConfig) -> int:
    if cfg.vision.name_or_path in (None, "filter"):
        return cfg.vision.shape()["image_size"]
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(cfg.vision.name_or_path)
    return getattr(config, "vision_config", config).image_size


def build_initial_model(ctx: StageContext, cfg: VLConfig, tokenizer, lm_path: str | None):
    """Vision tower + fresh projector + language model, as a LlavaForConditionalGeneration."""
    from infir.model.llm import build_model
    from infir.model.vision import build_vision_tower
    from infir.model.vlm import build_processor, build_vlm
    from infir.sft.stage import ensure_chat_tokens
    from infir.tokenize.chat import use_chat_eos

    lm_cfg = cfg.lm if lm_path is None else cfg.lm.model_copy(update={"name_or_path": lm_path})
    language_model = build_model(lm_cfg, tokenizer=tokenizer)
    ensure_chat_tokens(tokenizer, language_model)
    tower_source = str(ctx.stage_dir / "filter" / "model") if cfg.vision.name_or_path == "filter" else None
    tower = build_vision_tower(cfg.vision, tower_source)
    model = build_vlm(tower, language_model, tokenizer, cfg.projector, cfg.vision.feature_layer)
    use_chat_eos(tokenizer, model)
    return model, build_processor(tokenizer, model.config)


def load_stage_model(path: Path):
    import torch
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    model = LlavaForConditionalGeneration.from_pretrained(path, dtype=torch.float32)
    return model, AutoProcessor.from_pretrained(path)


def run_filter(ctx: StageContext, cfg: VLConfig, tokenizer, image_size: int, info):
    """The scorer and its measured precision/recall on held-out pairs (cached in filter/)."""
    from infir.model.vision import siglip_vision_config
    from infir.model.vlm import build_image_processor
    from infir.vl.filter import SimilarityScorer, caption_pairs, measure, train_dual_encoder

    fc = cfg.filter
    out = ctx.stage_dir / "filter"
    done = out / "filter.json"
    if not info.is_main:  # rank 0 trains and measures the filter once; the other ranks load it
        barrier(info)
    if done.exists():
        source = fc.model or str(out / "model")
        return SimilarityScorer.from_pretrained(source, fc.score, str(info.device)), read_json(done)
    t0 = time.time()
    if fc.model is not None:
        scorer = SimilarityScorer.from_pretrained(fc.model, fc.score, str(info.device))
        trained = None
    else:
        scorer = train_dual_encoder(
            fc.dual_encoder,
            siglip_vision_config(cfg.vision),
            tokenizer,
            build_image_processor(image_size),
            ctx.recipe.seed,
            image_size,
            out,
            info.device,
        )
        scorer.save(out / "model")
        trained = {
            "steps": fc.dual_encoder.steps,
            "pairs": fc.dual_encoder.pairs_per_generator * len(fc.dual_encoder.generators),
        }
    stats = {"model": fc.model or "trained tiny SigLIP", "score": scorer.kind, "trained": trained}
    if fc.heldout_pairs:
        generators = fc.dual_encoder.generators if fc.model is None else ["shapes"]
        per = max(1, fc.heldout_pairs // len(generators))
        options = fc.dual_encoder.generator_options if fc.model is None else None
        images, texts = caption_pairs(generators, per, ctx.recipe.seed, "heldout", image_size, options)
        stats["heldout"] = measure(scorer, images, texts, fc.threshold, fc.batch_size, ctx.recipe.seed)
        log(f"filter on held-out pairs vs shuffled captions: {stats['heldout']}")
    stats["seconds"] = round(time.time() - t0, 1)
    write_json(done, stats)
    barrier(info)  # the other ranks wait here for filter.json and the model
    return scorer, stats


def train_phase(
    ctx: StageContext, cfg: VLConfig, index: int, stage: CurriculumPhase, model, processor, scorer, pool, info
) -> dict:
    from infir.model.vlm_inputs import ImagePreparer
    from infir.vl.batches import VLBatches, encode_all_vl
    from infir.vl.curriculum import replay_conversations, stage_conversations

    tokenizer = processor.tokenizer
    conversations, data_stats = stage_conversations(
        stage,
        ctx.recipe.seed,
        pool,
        cfg.on_bad_record,
        scorer,
        cfg.filter.threshold,
        cfg.filter.batch_size,
        log,
    )
    if stage.replay:
        replayed, data_stats["replay"] = replay_conversations(
            stage,
            cfg.stages,
            len(conversations),
            ctx.recipe.seed,
            pool,
            cfg.on_bad_record,
            scorer,
            cfg.filter.threshold,
            cfg.filter.batch_size,
            log,
        )
        conversations = conversations + replayed
    train_cfg = stage.train_config()
    max_tokens = stage.max_conversation_tokens or train_cfg.seq_len
    examples, too_long = encode_all_vl(
        tokenizer, conversations, model.config.image_token_id, model.config.image_seq_length, max_tokens
    )
    data = VLBatches(
        examples,
        train_cfg.seq_len,
        train_cfg.global_batch_size,
        ctx.recipe.seed + index,
        tokenizer.pad_token_id,
        ImagePreparer(processor.image_processor, cfg.image_aspect),
        packing=stage.packing,
        rank=info.rank,
        world_size=info.world_size,
    )
    if stage.epochs is not None:
        train_cfg = train_cfg.model_copy(update={"max_steps": data.steps_for(stage.epochs)})
    extra = {
        "stage": stage.name,
        "trains": stage.trains,
        "module_lr": train_cfg.optimizer.module_lr,
        "data": data_stats,
        "examples": len(examples),
        "too_long": dict(too_long),
        "rows": len(data.rows),
        "images": data.images_per_epoch(),
        "padding_share": round(data.padding_share(), 4),
        "epochs_seen": round(train_cfg.max_steps / data.steps_per_epoch, 3),
    }
    log(
        f"stage {index + 1} {stage.name}: {len(examples)} conversations in {len(data.rows)} rows, "
        f"{train_cfg.max_steps} steps, trains {stage.trains}"
    )
    objective = None
    if cfg.projector.output_norm is not None and "projector" in stage.trains:
        from infir.vl.image_norm import ImageNormObjective

        objective = ImageNormObjective(
            model.model.multi_modal_projector, cfg.projector.output_norm, cfg.projector.output_norm_weight
        )
    try:
        return fit(
            train_cfg,
            model,
            processor,
            data,
            ctx.stage_dir / f"{index + 1}-{stage.name}",
            info,
            objective=objective,
            seed=ctx.recipe.seed,
            extra_summary=extra,
        )
    finally:
        if objective is not None:
            objective.remove()


def with_image_settings(spec, image_size: int, seed: int):
    """A task that draws its held-out images draws them at the model's image size, from the recipe's seed."""
    from infir.eval.registry import task_class

    if getattr(task_class(spec.name), "draws_images", False):
        return spec.model_copy(update={"options": {"size": image_size, "seed": seed, **spec.options}})
    return spec


def evaluate_phase(cfg: VLConfig, folder: Path, image_size: int, seed: int) -> dict:
    """The curriculum stage's model on `vl.eval.tasks`, through the one evaluation path (samples in eval/)."""
    from infir.eval.backends import VLBackend
    from infir.eval.runner import evaluate_model

    backend = VLBackend.load(folder / FINAL, aspect=cfg.image_aspect)
    specs = [with_image_settings(spec, image_size, seed) for spec in cfg.eval.tasks]
    results = evaluate_model(
        backend, specs, chat=True, batch_size=cfg.eval.batch_size, samples_dir=folder / "eval"
    )
    for name, metrics in results.items():
        results[name] = {k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()}
        log(f"  {name}: {results[name]}")
    return results


def skill_table(stages: list[dict]) -> list[dict]:
    """One row per curriculum stage: the primary metric of every task evaluated after it, and the columns
    its task shows beside it (`Task.report_columns`, e.g. OCR's no-reading level)."""
    from infir.eval.registry import task_class
    from infir.eval.task import Task

    rows = []
    for s in stages:
        row = {"stage": s["stage"]}
        for task, metrics in (s.get("eval") or {}).items():
            cls = task_class(task) or Task
            row[task] = metrics.get(cls.primary_metric)
            for suffix, metric in cls.report_columns.items():
                row[f"{task}_{suffix}"] = metrics.get(metric)
        rows.append(row)
    return rows


def merge_metrics(stage_dir: Path, folders: list[str]) -> None:
    """<stage_dir>/metrics.jsonl: every curriculum stage's training log, each line naming its stage."""
    lines = []
    for name in folders:
        path = stage_dir / name / "metrics.jsonl"
        if path.is_file():
            lines += [
                json.dumps({"curriculum_stage": name, **json.loads(line)})
                for line in path.read_text().splitlines()
                if line.strip()
            ]
    (stage_dir / "metrics.jsonl").write_text("".join(line + "\n" for line in lines))


def run(ctx: StageContext) -> dict:
    import torch

    cfg: VLConfig = ctx.recipe.vl
    info = init_distributed(ctx.recipe.runtime.device)
    t0 = time.time()
    lm_path = resolve_start(ctx)  # vl.language_model: this run's SFT model (auto), a path, or None (fresh)
    image_size = vision_image_size(cfg)
    tokenizer = resolve_tokenizer(ctx, cfg, lm_path)
    scorer, filter_stats = (None, None)
    if cfg.filter.enabled:
        scorer, filter_stats = run_filter(ctx, cfg, tokenizer, image_size, info)
    from infir.vl.curriculum import ImagePool

    pool = ImagePool(image_size, cfg.heldout_fraction)
    stages, previous = [], None
    for i, stage in enumerate(cfg.stages):
        folder = ctx.stage_dir / f"{i + 1}-{stage.name}"
        if (folder / "summary.json").exists():
            log(f"stage {i + 1} {stage.name}: done, skipped")
            stages.append(read_json(folder / "summary.json"))
            previous = folder / FINAL
            continue
        torch.manual_seed(ctx.recipe.seed + i)
        if previous is None:
            model, processor = build_initial_model(ctx, cfg, tokenizer, lm_path)
        else:
            model, processor = load_stage_model(previous)
        summary = train_phase(ctx, cfg, i, stage, model, processor, scorer, pool, info)
        del model
        if info.is_main and (cfg.eval.after is None or stage.name in cfg.eval.after):
            summary["eval"] = evaluate_phase(cfg, folder, image_size, ctx.recipe.seed)
        if info.is_main:
            write_json(folder / "summary.json", summary)
        stages.append(summary)
        previous = folder / FINAL
    final = ctx.stage_dir / FINAL
    if info.is_main and previous is not None:
        if final.is_symlink() or final.exists():
            final.unlink()
        os.symlink(os.path.relpath(previous, ctx.stage_dir), final)
    if info.is_main:
        merge_metrics(ctx.stage_dir, [f"{i + 1}-{s.name}" for i, s in enumerate(cfg.stages)])
    table = skill_table(stages)
    log("skill after each stage:\n" + json.dumps(table, indent=1))
    return {
        "table": table,
        "filter": filter_stats,
        "stages": stages,
        "image_size": image_size,
        "language_model": lm_path or "fresh",
        "checkpoint": str(final),
        "seconds": round(time.time() - t0, 1),
        "load_average": os.getloadavg(),
    }
