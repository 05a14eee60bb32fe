"""Verifiable rewards: the task's own checker plus an optional format reward.

    reward = correct * Task.reward(doc, output) + format * [re.search(format_pattern, output.strip())]
             + steps * (share of the reference solution's steps the output writes first, see `steps.py`)

`Task.reward` is what evaluation trusts: exact numbers for the generated problems, math-verify for
MATH-style answers, the code sandbox for HumanEval/MBPP, reasoning-gym's own scorer for `rg:` tasks.
Code rewards wait on sandbox processes, so `workers` > 1 judges outputs on a thread pool.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from infir.eval.task import Task
from infir.rl.config import RewardConfig
from infir.rl.solution_steps import reference_prefix_share


@dataclass(frozen=True)
class Reward:
    total: float
    correct: float  # Task.reward, before weighting (1.0 = judged fully correct)
    formatted: bool
    reference_steps: int = 0  # steps of the doc's worked solution (0: it has none)
    steps_matched: int = 0  # how many of them the output wrote first, in order


class Rewarder:
    def __init__(self, task: Task, cfg: RewardConfig | None = None):
        self.task, self.cfg = task, cfg or RewardConfig()
        try:
            self.pattern = re.compile(self.cfg.format_pattern)
        except re.error as exc:
            raise ValueError(
                f"rl.reward.format_pattern {self.cfg.format_pattern!r} is not a regex: {exc}"
            ) from None

    def formatted(self, output: str) -> bool:
        return self.pattern.search(output.strip()) is not None

    def score(self, doc: dict, output: str) -> Reward:
        correct = float(self.task.reward(doc, output))  # judged even at weight 0: accuracy is logged
        formatted = self.formatted(output)
        # Counted even at weight 0: the share of reference steps followed is logged.
        steps, matched = reference_prefix_share(str(doc.get("solution") or ""), output)
        total = self.cfg.correct * correct + (self.cfg.format if formatted else 0.0)
        if self.cfg.steps and steps:
            total += self.cfg.steps * matched / steps
        return Reward(
            total=total, correct=correct, formatted=formatted, reference_steps=steps, steps_matched=matched
        )

    def score_many(self, docs: Sequence[dict], outputs: Sequence[str]) -> list[Reward]:
        if len(docs) != len(outputs):
            raise ValueError(f"{len(docs)} docs but {len(outputs)} outputs")
        if self.cfg.workers == 1:
            return [self.score(d, o) for d, o in zip(docs, outputs)]
        with ThreadPoolExecutor(max_workers=self.cfg.workers) as pool:
            return list(pool.map(self.score, docs, outputs))
