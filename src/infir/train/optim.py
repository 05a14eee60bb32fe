"""AdamW with weight-decay groups and per-module learning rates (0 freezes a module)."""

from __future__ import annotations

import torch

from infir.train.config import OptimizerConfig


def module_lr(name: str, cfg: OptimizerConfig) -> float:
    """The LR of parameter `name`: the longest matching `module_lr` prefix wins, else the default."""
    best, lr = -1, cfg.lr
    for prefix, value in cfg.module_lr.items():
        if (name == prefix or name.startswith(prefix.rstrip(".") + ".")) and len(prefix) > best:
            best, lr = len(prefix), value
    return lr


def freeze_by_lr(model, cfg: OptimizerConfig) -> None:
    for name, p in model.named_parameters():
        if module_lr(name, cfg) == 0.0:
            p.requires_grad_(False)


def param_groups(model, cfg: OptimizerConfig) -> list[dict]:
    """One group per (lr, decays) pair. Norm gains and biases (1-D) take no weight decay."""
    groups: dict[tuple[float, bool], list] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        lr = module_lr(name, cfg)
        decays = p.ndim >= 2
        groups.setdefault((lr, decays), []).append(p)
    return [
        {"params": ps, "lr": lr, "base_lr": lr, "weight_decay": cfg.weight_decay if decays else 0.0}
        for (lr, decays), ps in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1]))
    ]


def build_optimizer(model, cfg: OptimizerConfig, device: torch.device) -> torch.optim.Optimizer:
    groups = param_groups(model, cfg)
    if not groups:
        raise ValueError("no trainable parameters: every module has learning rate 0")
    fused = cfg.fused
    if fused is None:
        fused = device.type in ("cuda", "cpu")
    try:
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, fused=fused)
    except (RuntimeError, TypeError):  # fused kernels missing for this device/dtype
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps)


def set_lr(optimizer: torch.optim.Optimizer, factor: float) -> float:
    for group in optimizer.param_groups:
        group["lr"] = group["base_lr"] * factor
    return max(g["base_lr"] for g in optimizer.param_groups) * factor
