"""The recipe stage `curate`: `ctx.recipe.curate` into `ctx.stage_dir`.

Resumable: the framework keeps the stage directory of a killed run, and `run_curate` finishes
only the shards, partitions and driver steps that had not completed.
"""

from __future__ import annotations

from infir.curate.pipeline import run_curate


def run(ctx) -> dict:
    return run_curate(ctx.recipe.curate, ctx.stage_dir, seed=int(ctx.recipe.seed))
