"""A numpy Llama forward pass over a GGUF file, following llama.cpp's conventions (not HF's).

It reads tensors by their llama.cpp names, dequantizes them with `gguf.quants`, and applies rope to
*adjacent pairs* of each head as llama.cpp's `llama` architecture does. If the exporter's Q/K
permutation, tensor naming, tied-output fallback or hyperparameters were wrong, these logits would
not match the Hugging Face model's, so the layout is checked without llama.cpp installed.
"""

from __future__ import annotations

import numpy as np


def load(path):
    import gguf
    from gguf import quants

    reader = gguf.GGUFReader(str(path))
    meta = {
        name: field.contents()
        for name, field in reader.fields.items()
        if not name.startswith("tokenizer.ggml.")
    }
    tensors = {}
    for t in reader.tensors:
        data = quants.dequantize(t.data, t.tensor_type) if t.tensor_type.name.startswith("Q") else t.data
        # GGUF lists dims fastest-first; numpy wants them slowest-first.
        tensors[t.name] = np.asarray(data, dtype=np.float64).reshape(tuple(int(d) for d in t.shape[::-1]))
    return meta, tensors


def _rms(x, w, eps):
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w


def _rope_pairs(x, positions, base):
    """x: (tokens, heads, dim); rotate (x[2i], x[2i+1]) by position * base^(-2i/dim)."""
    dim = x.shape[-1]
    inv = base ** (-np.arange(0, dim, 2) / dim)
    angle = positions[:, None] * inv[None, :]  # (tokens, dim/2)
    cos, sin = np.cos(angle)[:, None, :], np.sin(angle)[:, None, :]
    even, odd = x[..., 0::2], x[..., 1::2]
    out = np.empty_like(x)
    out[..., 0::2] = even * cos - odd * sin
    out[..., 1::2] = even * sin + odd * cos
    return out


def forward(meta, tensors, ids):
    """Logits (tokens, vocab) for token ids `ids` at positions 0..n-1, causal attention."""
    n_layers = meta["llama.block_count"]
    n_heads = meta["llama.attention.head_count"]
    n_kv = meta["llama.attention.head_count_kv"]
    eps = meta["llama.attention.layer_norm_rms_epsilon"]
    base = meta["llama.rope.freq_base"]
    x = tensors["token_embd.weight"][ids]
    n = len(ids)
    positions = np.arange(n, dtype=np.float64)
    mask = np.triu(np.full((n, n), -np.inf), 1)
    for i in range(n_layers):
        p = f"blk.{i}."
        h = _rms(x, tensors[p + "attn_norm.weight"], eps)
        q = (h @ tensors[p + "attn_q.weight"].T).reshape(n, n_heads, -1)
        k = (h @ tensors[p + "attn_k.weight"].T).reshape(n, n_kv, -1)
        v = (h @ tensors[p + "attn_v.weight"].T).reshape(n, n_kv, -1)
        q, k = _rope_pairs(q, positions, base), _rope_pairs(k, positions, base)
        group = n_heads // n_kv
        k, v = np.repeat(k, group, axis=1), np.repeat(v, group, axis=1)
        scores = np.einsum("qhd,khd->hqk", q, k) / np.sqrt(q.shape[-1]) + mask
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        attn = np.einsum("hqk,khd->qhd", scores / scores.sum(-1, keepdims=True), v).reshape(n, -1)
        x = x + attn @ tensors[p + "attn_output.weight"].T
        h = _rms(x, tensors[p + "ffn_norm.weight"], eps)
        gate = h @ tensors[p + "ffn_gate.weight"].T
        x = (
            x
            + ((gate / (1 + np.exp(-gate))) * (h @ tensors[p + "ffn_up.weight"].T))
            @ tensors[p + "ffn_down.weight"].T
        )
    x = _rms(x, tensors["output_norm.weight"], eps)
    output = tensors.get("output.weight", tensors["token_embd.weight"])  # tied: llama.cpp's fallback
    return x @ output.T
