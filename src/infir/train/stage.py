"""Pretraining and annealing stages; `fit_stage` is the one path every training stage goes through."""

from __future__ import annotations

from infir.run import FINAL, StageContext
from infir.train.config import TrainConfig
from infir.train.parallel import DistInfo, init_distributed


def resolve_init(ctx: StageContext, init_from: str | None) -> str | None:
    """A stage name of this run becomes its final checkpoint; anything else is a path or Hub name."""
    from infir.config import TRAINING_STAGES

    if init_from in TRAINING_STAGES:
        return str(ctx.checkpoint_of(init_from))
    return init_from


def load_tokenizer_for(ctx: StageContext, model_path: str | None):
    from transformers import AutoTokenizer

    if ctx.has_output("tokenize"):
        return AutoTokenizer.from_pretrained(ctx.output_of("tokenize") / "tokenizer")
    if model_path:
        return AutoTokenizer.from_pretrained(model_path)
    raise FileNotFoundError("no tokenizer: run the tokenize stage or start from a checkpoint that has one")


def load_model(ctx: StageContext, cfg: TrainConfig, tokenizer):
    import torch

    from infir.model.llm import build_model

    init = resolve_init(ctx, cfg.init_from)
    model_cfg = ctx.recipe.model if init is None else ctx.recipe.model.model_copy(update={"name_or_path": init})
    # A model built from scratch (and any rows a stage adds to a loaded one) draws its initial weights
    # here: seeded, or every run of a recipe trains a different model.
    torch.manual_seed(ctx.recipe.seed)
    return build_model(model_cfg, tokenizer=tokenizer)


def fit_stage(ctx: StageContext, cfg: TrainConfig, model, tokenizer, data, val_data, info: DistInfo,
              extra_summary: dict | None = None) -> dict:
    from infir.model.llm import count_parameters
    from infir.train.trainer import Trainer

    import torch

    torch.manual_seed(ctx.recipe.seed)
    trainer = Trainer(cfg, model, tokenizer, data, ctx.stage_dir, info, val_data=val_data,
                      log=lambda msg: print(msg) if info.is_main else None)
    result = trainer.fit()
    trainer.save_final(ctx.stage_dir / FINAL)
    summary = {
        "steps": result.steps, "tokens": result.tokens, "loss": result.loss, "val_loss": result.val_loss,
        "tokens_per_s": result.tokens_per_s, "mfu": result.mfu, "train_seconds": result.seconds,
        "resumed_from": result.resumed_from, "parameters": count_parameters(trainer.raw_model),
        "trainable_parameters": count_parameters(trainer.raw_model, trainable_only=True),
        "precision": trainer.cfg.precision, "device": str(info.device), "world_size": info.world_size,
        "checkpoint": str(ctx.stage_dir / FINAL),
    }
    summary.update(extra_summary or {})
    return summary


def _token_stage(ctx: StageContext, cfg: TrainConfig) -> dict:
    from infir.tokenize.loader import build_loader
    from infir.tokenize.validation import ValidationBatches

    info = init_distributed(ctx.recipe.runtime.device)
    init = resolve_init(ctx, cfg.init_from)
    tokenizer = load_tokenizer_for(ctx, init or ctx.recipe.model.name_or_path)
    model = load_model(ctx, cfg, tokenizer)
    tok_dir = ctx.output_of("tokenize")
    common = dict(seq_len=cfg.seq_len, global_batch_size=cfg.global_batch_size, seed=ctx.recipe.seed,
                  rank=info.rank, world_size=info.world_size)
    data = build_loader(tok_dir, cfg.data_mix, **common)
    val = None
    if cfg.val_batches:  # repeatable: every validation sees the same batches
        val = ValidationBatches(tok_dir, cfg.seq_len, cfg.global_batch_size, info.rank, info.world_size,
                                max_batches=cfg.val_batches)
    return fit_stage(ctx, cfg, model, tokenizer, data, val, info, {"data_mix": cfg.data_mix})


def run_pretrain(ctx: StageContext) -> dict:
    return _token_stage(ctx, ctx.recipe.pretrain)


def run_anneal(ctx: StageContext) -> dict:
    cfg = ctx.recipe.anneal
    if cfg.init_from is None:
        cfg = cfg.model_copy(update={"init_from": "pretrain"})
    return _token_stage(ctx, cfg)

