"""The one training entry point, `fit`, and what a training stage needs around it: the model it starts
from and its tokenizer.

Every training stage (pretrain, anneal, sft, rl, each vl curriculum phase) reads as: model -> data ->
`fit(cfg, model, tokenizer, data, out_dir, info, objective=..., callbacks=...)` -> summary. `fit` runs the
trainer (`infir.train.trainer`), writes the final model to `<out_dir>/final` and returns the summary every
training stage shares, to which the stage adds its own keys.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

from infir.run import FINAL, StageContext
from infir.train.callbacks import Callback
from infir.train.config import TrainConfig
from infir.train.objectives import Objective
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

    model_cfg = (
        ctx.recipe.model if start is None else ctx.recipe.model.model_copy(update={"name_or_path": start})
    )
    # A model built from scratch (and any rows a stage adds to a loaded one) draws its initial weights
    # here: seeded, or every run of a recipe trains a different model.
    torch.manual_seed(ctx.recipe.seed)
    return build_model(model_cfg, tokenizer=tokenizer)


def fit(
    cfg: TrainConfig,
    model,
    tokenizer,
    data,
    out_dir: Path,
    info: DistInfo,
    *,
    val_data: Iterable[dict] | None = None,
    objective: Objective | None = None,
    seed: int | None = None,
    callbacks: Sequence[Callback] = (),
    extra_summary: dict | None = None,
) -> dict:
    """Train `model` on `data` into `out_dir` (checkpoints/, metrics.jsonl, final/) and return the summary.

    `seed` seeds torch's RNG before the trainer is built (dropout, data-loader state); None leaves it as the
    stage left it (RL's rollouts have already drawn from it)."""
    import torch

    from infir.model.llm import count_parameters
    from infir.train.trainer import Trainer

    if seed is not None:
        torch.manual_seed(seed)
    trainer = Trainer(
        cfg,
        model,
        tokenizer,
        data,
        out_dir,
        info,
        val_data=val_data,
        log=lambda msg: print(msg) if info.is_main else None,
        objective=objective,
        callbacks=callbacks,
    )
    result = trainer.fit()
    final = Path(out_dir) / FINAL
    trainer.save_final(final)
    summary = {
        "steps": result.steps,
        "tokens": result.tokens,
        "loss": result.loss,
        "val_loss": result.val_loss,
        "tokens_per_s": result.tokens_per_s,
        "mfu": result.mfu,
        "train_seconds": result.seconds,
        "resumed_from": result.resumed_from,
        "parameters": count_parameters(trainer.raw_model),
        "trainable_parameters": count_parameters(trainer.raw_model, trainable_only=True),
        "precision": trainer.cfg.precision,
        "device": str(info.device),
        "world_size": info.world_size,
        "checkpoint": str(final),
    }
    summary.update(extra_summary or {})
    return summary
