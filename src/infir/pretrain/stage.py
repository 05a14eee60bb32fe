"""The `pretrain` and `anneal` stages: the run's token shards (a mixture) through the one training entry point.

Pretraining starts from `pretrain.init_from` (a path or Hub name for continual pretraining, else the recipe's
model section); annealing starts from the pretraining checkpoint and decays the learning rate on its own mix.
"""

from __future__ import annotations

from infir.run import StageContext
from infir.stages import resolve_start
from infir.train.config import TrainConfig
from infir.train.fit import fit, initial_model, load_tokenizer_for
from infir.train.parallel import init_distributed


def _token_stage(ctx: StageContext, cfg: TrainConfig) -> dict:
    from infir.tokenize.loader import build_loader
    from infir.tokenize.validation import ValidationBatches

    info = init_distributed(ctx.recipe.runtime.device)
    start = resolve_start(ctx)
    tokenizer = load_tokenizer_for(ctx, start or ctx.recipe.model.name_or_path)
    model = initial_model(ctx, tokenizer, start)
    tok_dir = ctx.output_of("tokenize")
    common = dict(
        seq_len=cfg.seq_len,
        global_batch_size=cfg.global_batch_size,
        seed=ctx.recipe.seed,
        rank=info.rank,
        world_size=info.world_size,
    )
    data = build_loader(tok_dir, cfg.data_mix, **common)
    val = None
    if cfg.val_batches:  # repeatable: every validation sees the same batches
        val = ValidationBatches(
            tok_dir,
            cfg.seq_len,
            cfg.global_batch_size,
            info.rank,
            info.world_size,
            max_batches=cfg.val_batches,
        )
    return fit(
        cfg,
        model,
        tokenizer,
        data,
        ctx.stage_dir,
        info,
        val_data=val,
        seed=ctx.recipe.seed,
        extra_summary={"data_mix": cfg.data_mix},
    )


def run_pretrain(ctx: StageContext) -> dict:
    return _token_stage(ctx, ctx.recipe.pretrain)


def run_anneal(ctx: StageContext) -> dict:
    return _token_stage(ctx, ctx.recipe.anneal)
