"""The `synth` stage: seeds -> evolution -> teacher answers -> verification -> selection -> SFT data.

Writes `<run-dir>/synth/sft.jsonl` (SFT `messages` records, read by `ConversationSource(type="synth")`)
and `details/` (every prompt, every candidate answer with its verdict and reason); returns the summary
(counts per step and reason, requests per role). The request cache lives outside the stage folder
(`<run-dir>/cache/synth-requests.sqlite`), so a run resumed after a kill, a rerun with changed selection
settings, or a `--force` rerun asks the teacher only what it never answered.
"""

from __future__ import annotations

from infir.run import StageContext
from infir.synth.pipeline import synthesize


def run(ctx: StageContext) -> dict:
    return synthesize(ctx.recipe.synth, ctx.stage_dir, run_dir=ctx.run_dir, seed=ctx.recipe.seed)
