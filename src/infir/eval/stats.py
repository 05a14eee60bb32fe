"""Uncertainty of evaluation results: an accuracy's interval, and the paired difference of two models.

Two checkpoints evaluated on the same problems are compared problem by problem (a paired difference),
whose standard error is far smaller than that of two independent accuracies: most problems are solved by
both or by neither, and only the disagreements carry the difference.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

from infir.jsonl import read_objects

Z95 = 1.959964


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion (sane at 0 and 1, unlike p +- z*se)."""
    if n <= 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def accuracy_summary(correct: Sequence[bool]) -> dict:
    n = len(correct)
    k = sum(bool(c) for c in correct)
    p = k / n if n else 0.0
    lo, hi = wilson_interval(k, n)
    return {"accuracy": p, "stderr": math.sqrt(p * (1 - p) / n) if n else 0.0, "ci95": [lo, hi], "n": n}


def paired_difference(before: Sequence[bool], after: Sequence[bool]) -> dict:
    """after - before on the same problems: the mean difference, its standard error and z = diff / se."""
    if len(before) != len(after):
        raise ValueError(f"paired comparison needs the same problems: {len(before)} vs {len(after)} results")
    n = len(before)
    if n < 2:
        raise ValueError("a paired comparison needs at least 2 problems")
    d = [float(bool(a)) - float(bool(b)) for b, a in zip(before, after)]
    mean = sum(d) / n
    var = sum((x - mean) ** 2 for x in d) / (n - 1)
    se = math.sqrt(var / n)
    return {
        "diff": mean,
        "stderr": se,
        "z": mean / se if se > 0 else (0.0 if mean == 0 else math.copysign(math.inf, mean)),
        "n": n,
        "improved": sum(x > 0 for x in d),
        "regressed": sum(x < 0 for x in d),
    }


def correctness_by_doc(samples_file: Path) -> dict[int, bool] | None:
    """Per-problem correctness from a samples file (the first sample of each problem); None when its
    rows carry no boolean `correct` (tasks scored otherwise)."""
    if not samples_file.exists():
        return None
    out: dict[int, bool] = {}
    for _, row in read_objects(samples_file):
        if not isinstance(row.get("correct"), bool) or "doc_index" not in row:
            return None
        out.setdefault(int(row["doc_index"]), row["correct"])
    return out or None


def compare_stages(per_stage: dict[str, dict[int, bool]]) -> tuple[dict, list[dict]]:
    """Intervals per stage and the paired gain of each stage over the one before it (in the given order)."""
    intervals = {
        stage: accuracy_summary([c for _, c in sorted(res.items())]) for stage, res in per_stage.items()
    }
    gains = []
    stages = list(per_stage)
    for before, after in zip(stages, stages[1:]):
        common = sorted(set(per_stage[before]) & set(per_stage[after]))
        if len(common) < 2:
            continue
        gain = paired_difference(
            [per_stage[before][i] for i in common], [per_stage[after][i] for i in common]
        )
        gains.append({"from": before, "to": after, **gain})
    return intervals, gains
