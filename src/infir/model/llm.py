"""The language model: transformers' LlamaForCausalLM, built from a config or loaded by path/name.

Everything we train saves with `save_pretrained` and loads with `AutoModelForCausalLM`, so
lm-evaluation-harness, vLLM and llama.cpp's converters work on our checkpoints unchanged.
"""

from __future__ import annotations

from typing import Literal

from pydantic import model_validator

from infir.config_base import Section

# Shapes we name in recipes. `llama-3.2-1b` is the architecture InfiR continues from.
PRESETS: dict[str, dict] = {
    # MLP width a multiple of 32 so llama.cpp's q8_0/q4_0 blocks quantize every matrix
    "tiny": dict(
        hidden_size=256,
        num_layers=4,
        num_heads=4,
        num_kv_heads=4,
        intermediate_size=704,
        tie_embeddings=True,
        rope_theta=10000.0,
        max_position_embeddings=1024,
    ),
    # The tiny recipe's model: narrow enough that a CPU makes the thousands of optimizer steps in which
    # a transformer learns to copy operands and recall arithmetic facts (a wider one makes too few).
    "micro": dict(
        hidden_size=128,
        num_layers=4,
        num_heads=4,
        num_kv_heads=4,
        intermediate_size=352,
        tie_embeddings=True,
        rope_theta=10000.0,
        max_position_embeddings=1024,
    ),
    "llama-3.2-1b": dict(
        hidden_size=2048,
        num_layers=16,
        num_heads=32,
        num_kv_heads=8,
        intermediate_size=8192,
        tie_embeddings=True,
        rope_theta=500000.0,
        max_position_embeddings=131072,
    ),
}


class ModelConfig(Section):
    """Either `name_or_path` (continue from a checkpoint) or an architecture (preset and/or explicit sizes)."""

    name_or_path: str | None = None
    preset: Literal["micro", "tiny", "llama-3.2-1b"] | None = "tiny"
    hidden_size: int | None = None
    num_layers: int | None = None
    num_heads: int | None = None
    num_kv_heads: int | None = None
    intermediate_size: int | None = None
    max_position_embeddings: int | None = None
    rope_theta: float | None = None
    tie_embeddings: bool | None = None
    attn_implementation: Literal["sdpa", "eager", "flash_attention_2"] = "sdpa"
    init_std: float = 0.02

    @model_validator(mode="after")
    def _check(self) -> "ModelConfig":
        if self.name_or_path is None and self.preset is None and self.hidden_size is None:
            raise ValueError("model: give name_or_path, a preset, or explicit sizes")
        shape = self.shape() if self.name_or_path is None else None
        if shape and shape["hidden_size"] % shape["num_heads"]:
            raise ValueError(
                f"model: hidden_size {shape['hidden_size']} is not divisible by num_heads {shape['num_heads']}"
            )
        if shape and shape["num_heads"] % shape["num_kv_heads"]:
            raise ValueError("model: num_heads must be a multiple of num_kv_heads")
        return self

    def shape(self) -> dict:
        base = dict(PRESETS[self.preset]) if self.preset else {}
        for key in (
            "hidden_size",
            "num_layers",
            "num_heads",
            "num_kv_heads",
            "intermediate_size",
            "max_position_embeddings",
            "rope_theta",
            "tie_embeddings",
        ):
            value = getattr(self, key)
            if value is not None:
                base[key] = value
        missing = {"hidden_size", "num_layers", "num_heads"} - base.keys()
        if missing:
            raise ValueError(f"model: missing {sorted(missing)}")
        base.setdefault("num_kv_heads", base["num_heads"])
        base.setdefault("intermediate_size", 4 * base["hidden_size"])
        base.setdefault("max_position_embeddings", 2048)
        base.setdefault("rope_theta", 10000.0)
        base.setdefault("tie_embeddings", True)
        return base


def llama_config(
    cfg: ModelConfig,
    vocab_size: int,
    bos_token_id: int | None = None,
    eos_token_id: int | list[int] | None = None,
    pad_token_id: int | None = None,
):
    from transformers import LlamaConfig

    s = cfg.shape()
    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=s["hidden_size"],
        intermediate_size=s["intermediate_size"],
        num_hidden_layers=s["num_layers"],
        num_attention_heads=s["num_heads"],
        num_key_value_heads=s["num_kv_heads"],
        max_position_embeddings=s["max_position_embeddings"],
        rope_parameters={"rope_type": "default", "rope_theta": s["rope_theta"]},
        tie_word_embeddings=s["tie_embeddings"],
        initializer_range=cfg.init_std,
        bos_token_id=bos_token_id,
        eos_token_id=eos_token_id,
        pad_token_id=pad_token_id,
    )


def build_model(cfg: ModelConfig, tokenizer=None, vocab_size: int | None = None, dtype=None):
    """A fresh model from the config's shape, or the checkpoint `name_or_path` (local or Hub)."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaForCausalLM

    if cfg.name_or_path:
        model = AutoModelForCausalLM.from_pretrained(
            cfg.name_or_path, dtype=dtype or torch.float32, attn_implementation=cfg.attn_implementation
        )
        if tokenizer is not None and len(tokenizer) > model.get_input_embeddings().num_embeddings:
            model.resize_token_embeddings(len(tokenizer))
        return model
    if vocab_size is None:
        if tokenizer is None:
            raise ValueError("build_model needs a tokenizer or vocab_size for a model built from a config")
        vocab_size = len(tokenizer)
    ids = {}
    if tokenizer is not None:
        ids = dict(
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    config = llama_config(cfg, vocab_size, **ids)
    config._attn_implementation = cfg.attn_implementation
    model = LlamaForCausalLM(config)
    if dtype is not None:
        model = model.to(dtype)
    return model


def count_parameters(model, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
