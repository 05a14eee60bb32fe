"""Model FLOPs per token and the hardware peak they are measured against (MFU)."""

from __future__ import annotations

import time
from functools import lru_cache

import torch

# Dense bf16 peaks from datasheets (FLOP/s); used when no peak is configured.
GPU_PEAKS_BF16 = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "A10": 125e12, "L4": 121e12}


def flops_per_token(model, seq_len: int) -> float:
    """6 N for the matmuls (forward + backward) plus causal attention scores, PaLM-style."""
    cfg = model.config
    cfg = getattr(cfg, "text_config", None) or cfg
    n_params = sum(p.numel() for n, p in model.named_parameters() if "embed_tokens" not in n)
    if getattr(cfg, "tie_word_embeddings", False):
        n_params += cfg.vocab_size * cfg.hidden_size  # the LM head matmul still runs
    attn = 6 * cfg.num_hidden_layers * cfg.hidden_size * seq_len  # 12 L H T / 2 for a causal mask
    return 6 * n_params + attn


@lru_cache(maxsize=8)
def measured_matmul_peak(
    device: str = "cpu", dtype: str = "fp32", size: int = 1024, seconds: float = 0.5
) -> float:
    """Sustained FLOP/s of a square matmul on this device and thread count (same-run MFU reference)."""
    dt = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype]
    a = torch.randn(size, size, device=device, dtype=dt)
    b = torch.randn(size, size, device=device, dtype=dt)
    for _ in range(2):
        a @ b
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ b
        n += 1
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return 2 * size**3 * n / (time.perf_counter() - t0)


def peak_flops(device: torch.device, precision: str) -> float:
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for key, peak in GPU_PEAKS_BF16.items():
            if key in name:
                return peak if precision == "bf16" else peak / 2  # tf32 is half the bf16 rate
        return measured_matmul_peak(str(device), precision, size=8192)
    return measured_matmul_peak("cpu", precision)
