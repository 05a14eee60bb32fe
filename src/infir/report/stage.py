"""The `report` stage."""

from __future__ import annotations

from infir.report.render import write_report
from infir.run import StageContext


def run(ctx: StageContext) -> dict:
    cfg = ctx.recipe.report
    path = write_report(
        ctx.run_dir,
        title=cfg.title or f"infir report: {ctx.recipe.name}",
        samples_per_task=cfg.samples_per_task,
    )
    pngs = sorted(p.name for p in path.parent.glob("*.png"))
    return {"report": str(path), "plots": pngs}
