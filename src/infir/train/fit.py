"""The library side of a training stage: the model it starts from, its tokenizer, and `fit_stage`, the one
path every training stage goes through."""

from __future__ import annotations

from infir.run import FINAL, StageContext
from infir.train.config import TrainConfig
from infir.train.parallel import DistInfo


def load_tokenizer_for(ctx: StageContext, model_path: str | None):
    from transformers import AutoTokenizer

    if ctx.has_output("tokenize"):
        return AutoTokenizer.from_pretrained(ctx.output_of("tokenize") / "tokenizer")
    if model_path:
        return AutoTokenizer.from_pretrained(model_path)
    raise FileNotFoundError("no tokenizer: run the tokenize stage or start from a checkpoint that has one")


def initial_model(ctx: StageContext, tokenizer, start: str | None):
    """The model a training stage starts from: `start` (a checkpoint folder or Hub name, see
    `infir.stages.resolve_start`), or a new one from the recipe's model section when None."""
    import torch

    from infir.model.llm import build_model

    model_cfg = ctx.recipe.model if start is None else ctx.recipe.model.model_copy(update={"name_or_path": start})
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
