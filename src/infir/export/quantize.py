"""Int8 dynamic quantization for PyTorch CPU inference, and the bf16 safetensors export.

Dynamic quantization stores every `nn.Linear` weight as int8 (one scale per output channel) and
quantizes activations on the fly per batch, so matmuls run in int8 (fbgemm / oneDNN kernels) with no
calibration data. Embeddings and norms stay float. With tied embeddings the output layer is a
separate int8 copy of the embedding matrix: the input lookup keeps full precision.

torch 2.13 marks `torch.ao.quantization` deprecated in favour of torchao's `quantize_`, but torchao's
int8 path targets GPUs and `torch.compile`; the eager `quantize_dynamic` below is still the one whose
CPU kernels are fast without compilation, so it is what we use (its deprecation warning is silenced
here, not globally).
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path


def quantize_dynamic_int8(model):
    """An int8-dynamic copy of `model` (its Linear layers replaced); the input model is left as it is."""
    import torch
    from torch.ao.quantization import quantize_dynamic
    from torch.ao.quantization.qconfig import per_channel_dynamic_qconfig

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*quantize_per_tensor.*")
        warnings.filterwarnings("ignore", message=".*quantize_per_channel.*")
        return quantize_dynamic(
            model.float().eval(),
            {torch.nn.Linear: per_channel_dynamic_qconfig},
            dtype=torch.qint8,
            inplace=False,
        )


def linear_weight_bytes(model) -> int:
    """Bytes held by Linear weights, float or packed int8 (to report what quantization saved)."""
    import torch
    from torch.ao.nn.quantized.dynamic import Linear as DynamicQuantizedLinear

    total = 0
    for module in model.modules():
        if isinstance(module, DynamicQuantizedLinear):  # weight() unpacks the int8 matrix
            weight = module.weight()
            total += weight.numel() * weight.element_size()
        elif isinstance(module, torch.nn.Linear):
            total += module.weight.numel() * module.weight.element_size()
    return total


def export_hf_bf16(model_dir: str | Path, out_dir: str | Path, log=print) -> dict:
    """Model in bfloat16 safetensors plus tokenizer and generation config: half the fp32 size, loads with
    `AutoModelForCausalLM.from_pretrained(out_dir)` anywhere (vLLM, lm-eval, llama.cpp's converter)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_dir, out_dir = Path(model_dir), Path(out_dir)
    t0 = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.bfloat16)
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    size = sum(p.stat().st_size for p in out_dir.glob("*.safetensors"))
    log(f"wrote {out_dir} (bf16 safetensors, {size / 2**20:.1f} MiB) in {time.perf_counter() - t0:.1f}s")
    return {
        "path": str(out_dir),
        "dtype": "bfloat16",
        "bytes": size,
        "seconds": round(time.perf_counter() - t0, 2),
    }
