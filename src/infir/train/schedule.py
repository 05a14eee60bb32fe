"""Learning-rate schedules as pure functions of the step, so resume needs no scheduler state."""

from __future__ import annotations

import math

from infir.train.config import ScheduleConfig


def warmup_steps(cfg: ScheduleConfig, max_steps: int) -> int:
    return cfg.warmup_steps if cfg.warmup_steps is not None else int(round(cfg.warmup_ratio * max_steps))


def lr_factor(cfg: ScheduleConfig, step: int, max_steps: int) -> float:
    """Multiplier of the peak LR for optimizer step `step` (0-based)."""
    warm = warmup_steps(cfg, max_steps)
    if warm and step < warm:
        return (step + 1) / warm
    if cfg.kind == "constant":
        return 1.0
    span = max(1, max_steps - warm)
    progress = min(1.0, (step - warm) / span)
    floor = cfg.min_lr_ratio
    if cfg.kind == "cosine":
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))
    if cfg.kind == "linear":  # to zero: annealing
        return 1.0 - (step - warm) / span if step < max_steps else 0.0
    if cfg.kind == "wsd":
        decay = max(1, int(round(cfg.decay_ratio * max_steps)))
        decay_start = max_steps - decay
        if step < decay_start:
            return 1.0
        return floor + (1 - floor) * (1 - (step - decay_start + 1) / decay)
    raise ValueError(f"unknown schedule {cfg.kind!r}")
