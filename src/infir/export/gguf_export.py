"""Write a Hugging Face Llama-family checkpoint as a llama.cpp GGUF file (F16, Q8_0 or Q4_0).

    result = export_gguf("runs/tiny/sft/final", "model-q8_0.gguf", quant="q8_0")

What llama.cpp's `llama` architecture expects, and why the code does what it does:
  - tensor names come from `gguf.TensorNameMap` (the table llama.cpp's own converter uses);
  - Q and K projections are permuted per head: HF rotates the two *halves* of each head
    (rotate_half), llama.cpp's `llama` rope rotates *adjacent pairs*; row `j*half + i` of a head
    becomes row `2*i + j`. With GQA, K is permuted with the KV head count;
  - 1-D tensors (norms) stay F32; 2-D weights take the requested type. A matrix whose rows are not a
    multiple of the 32-value quant block cannot be Q8_0/Q4_0 and falls back to F16 (reported);
  - Q4_0 keeps the token embedding (and the output matrix) at Q8_0: with tied embeddings that one
    matrix is also the output layer, the most precision-sensitive weight, which llama.cpp's own
    quantizer also keeps at higher precision;
  - tied embeddings write no `output` tensor: llama.cpp reuses `token_embd`.

Quantization uses `gguf.quants` (the reference numpy implementation of the GGML block formats).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

QUANTS = ("f16", "q8_0", "q4_0")
BLOCK = 32  # values per Q8_0 / Q4_0 block


class ExportError(ValueError):
    """A checkpoint this exporter cannot write faithfully; the message names the file or field."""


@dataclass
class GGUFExport:
    path: str
    quant: str
    bytes: int
    seconds: float
    tensors: int
    tensor_types: dict[str, int]  # GGML type name -> tensor count
    f16_fallbacks: list[str] = field(default_factory=list)  # matrices whose rows do not fill quant blocks
    tokenizer_pre: str = ""
    tied_embeddings: bool = True

    def to_dict(self) -> dict:
        return asdict(self)


# ---- reading the checkpoint ------------------------------------------------------------------------
def _text_config(config):
    """The language model's config (LLaVA-style models nest it as `text_config`)."""
    return getattr(config, "text_config", None) or config


def load_config(model_dir: Path):
    from transformers import AutoConfig

    if not (model_dir / "config.json").is_file():
        raise ExportError(f"{model_dir}: no config.json (expected a Hugging Face model folder)")
    config = AutoConfig.from_pretrained(str(model_dir))
    text = _text_config(config)
    if text.model_type != "llama":
        raise ExportError(
            f"{model_dir}/config.json: model_type {text.model_type!r}; the GGUF exporter writes "
            "Llama-family models (model_type 'llama', alone or as a LLaVA text_config)"
        )
    if getattr(text, "hidden_act", "silu") != "silu":
        raise ExportError(
            f"{model_dir}/config.json: hidden_act {text.hidden_act!r}; llama.cpp's llama uses silu"
        )
    if getattr(text, "attention_bias", False) or getattr(text, "mlp_bias", False):
        raise ExportError(
            f"{model_dir}/config.json: attention_bias/mlp_bias are set; not supported by this exporter"
        )
    return config


def _safetensors_files(model_dir: Path) -> list[Path]:
    index = model_dir / "model.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        return [model_dir / s for s in shards]
    single = model_dir / "model.safetensors"
    if single.is_file():
        return [single]
    raise ExportError(
        f"{model_dir}: no model.safetensors (or sharded index); save the model with "
        "save_pretrained(safe_serialization=True)"
    )


def _text_name(name: str) -> str | None:
    """HF tensor name of the language model, with LLaVA's prefixes removed; None for vision tensors."""
    for prefix, repl in (
        ("model.language_model.", "model."),
        ("language_model.model.", "model."),
        ("language_model.lm_head.", "lm_head."),
    ):
        if name.startswith(prefix):
            return repl + name[len(prefix) :]
    if name.startswith(
        ("model.vision_tower.", "vision_tower.", "model.multi_modal_projector.", "multi_modal_projector.")
    ):
        return None
    return name


def iter_text_tensors(model_dir: Path) -> Iterator[tuple[str, np.ndarray]]:
    """(HF name, float32 array) of every language-model tensor, one at a time (bf16 needs torch)."""
    from safetensors import safe_open

    for path in _safetensors_files(model_dir):
        with safe_open(str(path), framework="pt") as f:
            for name in f.keys():  # noqa: SIM118 (safe_open is not a dict)
                text_name = _text_name(name)
                if text_name is None or text_name.endswith("rotary_emb.inv_freq"):
                    continue
                yield text_name, f.get_tensor(name).float().numpy()


# ---- hyperparameters -------------------------------------------------------------------------------
def head_dim(text) -> int:
    return getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads


def rope_parameters(text) -> dict:
    params = dict(getattr(text, "rope_parameters", None) or {})
    params.setdefault("rope_type", "default")
    params.setdefault("rope_theta", getattr(text, "rope_theta", 10000.0))
    return params


def llama3_rope_factors(text) -> np.ndarray:
    """Per-frequency divisors llama.cpp applies for Llama 3's rope scaling (tensor `rope_freqs`).

    Computed as default inverse frequencies over transformers' llama3 ones, so the GGUF rotates
    exactly as the HF model does.
    """
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    dim = head_dim(text)
    base = rope_parameters(text)["rope_theta"]
    default = 1.0 / (base ** (np.arange(0, dim, 2, dtype=np.float64) / dim))
    scaled, _ = ROPE_INIT_FUNCTIONS["llama3"](text, "cpu")
    return (default / scaled.double().numpy()).astype(np.float32)


def write_hparams(writer, text, name: str, file_type: int) -> None:
    import gguf

    writer.add_name(name)
    writer.add_context_length(text.max_position_embeddings)
    writer.add_embedding_length(text.hidden_size)
    writer.add_block_count(text.num_hidden_layers)
    writer.add_feed_forward_length(text.intermediate_size)
    writer.add_head_count(text.num_attention_heads)
    writer.add_head_count_kv(text.num_key_value_heads or text.num_attention_heads)
    writer.add_layer_norm_rms_eps(text.rms_norm_eps)
    writer.add_vocab_size(text.vocab_size)
    dim = head_dim(text)
    writer.add_rope_dimension_count(dim)
    if dim != text.hidden_size // text.num_attention_heads:
        writer.add_key_length(dim)
        writer.add_value_length(dim)
    rope = rope_parameters(text)
    writer.add_rope_freq_base(float(rope["rope_theta"]))
    if rope["rope_type"] == "linear":
        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(float(rope["factor"]))
    elif rope["rope_type"] not in ("default", "llama3"):
        raise ExportError(f"rope_type {rope['rope_type']!r} is not supported (default, linear, llama3)")
    writer.add_file_type(file_type)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)


# ---- tensors ---------------------------------------------------------------------------------------
def permute_rope_rows(weight: np.ndarray, n_heads: int) -> np.ndarray:
    """HF's half-split rotary layout -> llama.cpp's interleaved pairs, per head (see module doc)."""
    rows = weight.shape[0]
    return (
        weight.reshape(n_heads, 2, rows // n_heads // 2, *weight.shape[1:])
        .swapaxes(1, 2)
        .reshape(weight.shape)
    )


def pick_type(gguf_name: str, array: np.ndarray, quant: str):
    """The GGML type a tensor is stored in, and whether it fell back to F16 for want of full blocks."""
    from gguf import GGMLQuantizationType as T

    if array.ndim == 1:
        return T.F32, False
    if quant == "f16":
        return T.F16, False
    wanted = T.Q8_0 if quant == "q8_0" or gguf_name.startswith(("token_embd.", "output.")) else T.Q4_0
    if array.shape[-1] % BLOCK:
        return T.F16, True
    return wanted, False


def encode(array: np.ndarray, qtype) -> np.ndarray:
    from gguf import GGMLQuantizationType as T
    from gguf import quants

    if qtype == T.F32:
        return array.astype(np.float32)
    if qtype == T.F16:
        return array.astype(np.float16)
    return quants.quantize(np.ascontiguousarray(array, dtype=np.float32), qtype)


def export_gguf(
    model_dir: str | Path,
    out_path: str | Path,
    quant: str = "f16",
    *,
    name: str | None = None,
    tokenizer_pre: str | None = None,
    log=print,
) -> GGUFExport:
    """Write `model_dir` (HF Llama checkpoint + tokenizer) to `out_path` as a GGUF of type `quant`."""
    import gguf

    from infir.export.gguf_vocab import build_vocab, load_tokenizer_dir

    if quant not in QUANTS:
        raise ExportError(f"quant {quant!r}: choose one of {', '.join(QUANTS)}")
    model_dir, out_path = Path(model_dir), Path(out_path)
    t0 = time.perf_counter()
    config = load_config(model_dir)
    text = _text_config(config)
    tokenizer = load_tokenizer_dir(model_dir)
    vocab = build_vocab(tokenizer, text.vocab_size, eos_ids=_stop_ids(model_dir, text), pre=tokenizer_pre)

    file_type = {
        "f16": gguf.LlamaFileType.MOSTLY_F16,
        "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0,
        "q4_0": gguf.LlamaFileType.MOSTLY_Q4_0,
    }[quant]
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(f".{out_path.name}.tmp-{os.getpid()}")
    writer = gguf.GGUFWriter(str(tmp), gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.LLAMA])
    write_hparams(writer, text, name or model_dir.name, int(file_type))
    vocab.write(writer)

    tied = bool(getattr(config, "tie_word_embeddings", getattr(text, "tie_word_embeddings", False)))
    n_heads = text.num_attention_heads
    n_kv = text.num_key_value_heads or n_heads
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, text.num_hidden_layers)
    counts: dict[str, int] = {}
    fallbacks: list[str] = []
    seen: set[str] = set()
    for hf_name, array in iter_text_tensors(model_dir):
        if tied and hf_name == "lm_head.weight":
            continue  # llama.cpp reads the output layer from token_embd when `output` is absent
        gguf_name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if gguf_name is None:
            raise ExportError(f"{model_dir}: tensor {hf_name!r} has no llama.cpp name")
        if hf_name.endswith("self_attn.q_proj.weight"):
            array = permute_rope_rows(array, n_heads)
        elif hf_name.endswith("self_attn.k_proj.weight"):
            array = permute_rope_rows(array, n_kv)
        qtype, fell_back = pick_type(gguf_name, array, quant)
        if fell_back:
            fallbacks.append(gguf_name)
        writer.add_tensor(gguf_name, encode(array, qtype), raw_dtype=qtype)
        counts[qtype.name] = counts.get(qtype.name, 0) + 1
        seen.add(gguf_name)
    if rope_parameters(text)["rope_type"] == "llama3":
        writer.add_tensor(
            "rope_freqs.weight", llama3_rope_factors(text), raw_dtype=gguf.GGMLQuantizationType.F32
        )
        counts["F32"] = counts.get("F32", 0) + 1
    expected = 2 + 9 * text.num_hidden_layers + (0 if tied else 1)
    if len(seen) != expected:
        raise ExportError(
            f"{model_dir}: found {len(seen)} language-model tensors, expected {expected} "
            f"({text.num_hidden_layers} blocks, {'tied' if tied else 'untied'} embeddings)"
        )
    if fallbacks:
        log(
            f"gguf {quant}: {len(fallbacks)} matrices have rows not a multiple of {BLOCK}; kept in F16 "
            f"({', '.join(fallbacks[:4])}{', ...' if len(fallbacks) > 4 else ''})"
        )

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    os.replace(tmp, out_path)
    result = GGUFExport(
        path=str(out_path),
        quant=quant,
        bytes=out_path.stat().st_size,
        seconds=round(time.perf_counter() - t0, 2),
        tensors=sum(counts.values()),
        tensor_types=counts,
        f16_fallbacks=fallbacks,
        tokenizer_pre=vocab.pre,
        tied_embeddings=tied,
    )
    log(
        f"wrote {out_path} ({quant}, {result.bytes / 2**20:.1f} MiB, {result.tensors} tensors, "
        f"pre-tokenizer {vocab.pre}) in {result.seconds:.1f}s"
    )
    return result


def _stop_ids(model_dir: Path, text) -> list[int]:
    """The model's generation stop ids (chat models list end-of-turn first), from generation_config.json."""
    ids = None
    gen = model_dir / "generation_config.json"
    if gen.is_file():
        ids = json.loads(gen.read_text()).get("eos_token_id")
    if ids is None:
        ids = getattr(text, "eos_token_id", None)
    if ids is None:
        return []
    return [int(i) for i in (ids if isinstance(ids, list) else [ids])]
