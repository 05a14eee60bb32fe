"""Typed configs of the shared trainer. Stages differ only in data, loss mask, schedule and what trains."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from infir.config_base import Section


def cpu_has_fast_bf16() -> bool:
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_precision(precision: str, device) -> str:
    """The precision a run really uses: `auto` becomes bf16 or fp32 for `device`."""
    if precision != "auto":
        return precision
    import torch

    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if cpu_has_fast_bf16() else "fp32"


class OptimizerConfig(Section):
    lr: float = Field(1e-3, ge=0)
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = 1e-8
    weight_decay: float = Field(0.1, ge=0)
    grad_clip: float | None = 1.0
    fused: bool | None = None  # None: fused AdamW where the device supports it
    # Learning rate per module (parameter-name prefix), absolute; 0 freezes the module.
    # The VL curriculum is pure configuration on top of this.
    module_lr: dict[str, float] = Field(default_factory=dict)


class ScheduleConfig(Section):
    kind: Literal["cosine", "wsd", "linear", "constant"] = "cosine"
    warmup_steps: int | None = None
    warmup_ratio: float = Field(0.05, ge=0, le=1)
    decay_ratio: float = Field(0.2, ge=0, le=1)  # WSD: share of steps in the final decay
    min_lr_ratio: float = Field(0.1, ge=0, le=1)  # cosine / WSD floor, as a share of the peak


class TrainConfig(Section):
    # Where the weights start: None (from the model config), a stage name of this run ("pretrain"),
    # or a checkpoint path / Hub name.
    init_from: str | None = None
    max_steps: int = Field(100, ge=1)
    global_batch_size: int = Field(16, ge=1)  # sequences per optimizer step, across ranks
    micro_batch_size: int = Field(8, ge=1)
    seq_len: int = Field(256, ge=8)
    data_mix: str = "pretrain"
    # auto: bf16 autocast where the hardware runs it fast (GPUs with bf16, CPUs with AMX/AVX512-BF16),
    # else fp32. Weights and optimizer state stay fp32 either way.
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    compile: bool = False
    activation_checkpointing: bool = False
    deterministic: bool = False
    log_every: int = Field(10, ge=1)
    progress: bool = True  # a live progress bar on the main rank (off for log files and benchmarks)
    val_every: int = Field(0, ge=0)  # 0: validate only at the end
    val_batches: int = Field(4, ge=0)
    save_every: int = Field(0, ge=0)  # 0: only the final checkpoint
    keep_last: int = Field(2, ge=1)
    resume: Literal["auto", "never"] = "auto"
    peak_flops: float | None = None  # None: measured matmul peak (CPU) or the card's datasheet (GPU)
    loggers: list[Literal["tensorboard", "wandb"]] = Field(default_factory=list)
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)

    @model_validator(mode="after")
    def _check(self) -> "TrainConfig":
        if self.global_batch_size % self.micro_batch_size:
            raise ValueError(
                f"global_batch_size ({self.global_batch_size}) must be a multiple of "
                f"micro_batch_size ({self.micro_batch_size})"
            )
        return self
