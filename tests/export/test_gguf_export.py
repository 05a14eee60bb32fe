"""GGUF export without llama.cpp: metadata, tensor layout (through a numpy forward pass), quant types."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.export import gguf_reference

import gguf


def _fields(path):
    reader = gguf.GGUFReader(str(path))
    return reader, {name: field.contents() for name, field in reader.fields.items()}


def _hf_logits(model_dir, ids):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32).eval()
    with torch.inference_mode():
        return model(input_ids=torch.tensor([ids])).logits[0].double().numpy()


def _ids(model_dir, text):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(model_dir))(text)["input_ids"]


def test_metadata_describes_model_and_tokenizer(model_factory, gguf_factory):
    from transformers import AutoConfig, AutoTokenizer

    model_dir = model_factory("tied")
    reader, meta = _fields(gguf_factory("tied", "f16"))
    config = AutoConfig.from_pretrained(str(model_dir))
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    assert meta["general.architecture"] == "llama"
    assert meta["llama.block_count"] == config.num_hidden_layers
    assert meta["llama.embedding_length"] == config.hidden_size
    assert meta["llama.feed_forward_length"] == config.intermediate_size
    assert meta["llama.attention.head_count"] == config.num_attention_heads
    assert meta["llama.attention.head_count_kv"] == config.num_key_value_heads
    assert meta["llama.context_length"] == config.max_position_embeddings
    assert meta["llama.vocab_size"] == config.vocab_size
    assert meta["llama.rope.freq_base"] == pytest.approx(config.rope_parameters["rope_theta"])
    assert meta["llama.attention.layer_norm_rms_epsilon"] == pytest.approx(config.rms_norm_eps)
    assert meta["general.file_type"] == int(gguf.LlamaFileType.MOSTLY_F16)

    assert meta["tokenizer.ggml.model"] == "gpt2"
    assert meta["tokenizer.ggml.pre"] == "smollm"  # single digits, then GPT-2's regex
    tokens = meta["tokenizer.ggml.tokens"]
    assert len(tokens) == config.vocab_size
    vocab = tok.get_vocab()
    assert all(tokens[i] == t for t, i in vocab.items())
    merges = json.loads(tok.backend_tokenizer.to_str())["model"]["merges"]
    assert meta["tokenizer.ggml.merges"][:5] == [" ".join(m) for m in merges[:5]]
    assert len(meta["tokenizer.ggml.merges"]) == len(merges)
    types = meta["tokenizer.ggml.token_type"]
    assert types[vocab["<|im_end|>"]] == gguf.TokenType.CONTROL
    assert types[vocab["Ġ"]] == gguf.TokenType.NORMAL
    assert meta["tokenizer.ggml.eos_token_id"] == tok.eos_token_id
    assert meta["tokenizer.ggml.padding_token_id"] == tok.pad_token_id
    assert meta["tokenizer.ggml.add_bos_token"] is False
    template = meta["tokenizer.chat_template"]
    assert "<|im_start|>" in template and "generation" not in template.replace("add_generation_prompt", "")

    names = {t.name for t in reader.tensors}
    assert "output.weight" not in names  # tied: llama.cpp reads the output layer from token_embd
    assert {
        "token_embd.weight",
        "output_norm.weight",
        "blk.1.attn_q.weight",
        "blk.1.ffn_down.weight",
    } <= names


def test_untied_model_writes_output_tensor(gguf_factory):
    reader, _ = _fields(gguf_factory("untied", "f16"))
    assert "output.weight" in {t.name for t in reader.tensors}


@pytest.mark.parametrize("shape", ["tied", "untied", "gqa"])
def test_f16_layout_reproduces_hf_logits(model_factory, gguf_factory, shape):
    """llama.cpp's forward semantics on the GGUF's tensors give the HF model's logits (f16 rounding aside)."""
    model_dir = model_factory(shape)
    ids = _ids(model_dir, "Question: What is 12 + 30?\nAnswer: 12 + 30 = 42. The answer is 42.")
    meta, tensors = gguf_reference.load(gguf_factory(shape, "f16"))
    ours = gguf_reference.forward(meta, tensors, ids)
    ref = _hf_logits(model_dir, ids)
    assert np.abs(ours - ref).max() < 0.05 * np.abs(ref).max()
    assert (ours.argmax(-1) == ref.argmax(-1)).mean() >= 0.95


@pytest.mark.parametrize("quant", ["q8_0", "q4_0"])
def test_quantized_layout_stays_close(model_factory, gguf_factory, quant):
    model_dir = model_factory("gqa")
    ids = _ids(model_dir, "Question: Sam has 5 pens and loses 2. How many are left?\nAnswer:")
    meta, tensors = gguf_reference.load(gguf_factory("gqa", quant))
    ours, ref = gguf_reference.forward(meta, tensors, ids), _hf_logits(model_dir, ids)
    # Correlation of logits: a wrong layout gives ~0, quantization noise keeps it near 1.
    corr = np.corrcoef(ours.ravel(), ref.ravel())[0, 1]
    assert corr > (0.999 if quant == "q8_0" else 0.98)


def test_quant_types_and_block_fallback(gguf_factory):
    reader, meta = _fields(gguf_factory("tied", "q4_0"))
    types = {t.name: t.tensor_type.name for t in reader.tensors}
    assert meta["general.file_type"] == int(gguf.LlamaFileType.MOSTLY_Q4_0)
    assert types["token_embd.weight"] == "Q8_0"  # also the tied output layer: kept at 8 bits
    assert types["blk.0.attn_q.weight"] == "Q4_0" and types["blk.0.ffn_down.weight"] == "Q4_0"
    assert types["blk.0.attn_norm.weight"] == "F32"


def test_rows_that_do_not_fill_blocks_fall_back_to_f16():
    from infir.export.gguf_export import pick_type

    qtype, fell_back = pick_type("blk.0.ffn_down.weight", np.zeros((64, 688 + 8), np.float32), "q8_0")
    assert qtype.name == "F16" and fell_back
    qtype, fell_back = pick_type("blk.0.ffn_down.weight", np.zeros((64, 704), np.float32), "q4_0")
    assert qtype.name == "Q4_0" and not fell_back


def test_permutation_maps_half_split_to_pairs():
    from infir.export.gguf_export import permute_rope_rows

    head_dim, heads = 8, 2
    rows = np.arange(heads * head_dim, dtype=np.float32)[:, None]
    out = permute_rope_rows(rows, heads)[:, 0]
    # HF head 0 holds rotary halves [0..3 | 4..7]; llama.cpp wants pairs (0,4), (1,5), (2,6), (3,7).
    assert out[:head_dim].tolist() == [0, 4, 1, 5, 2, 6, 3, 7]
    assert out[head_dim:].tolist() == [8, 12, 9, 13, 10, 14, 11, 15]


def test_llama3_rope_scaling_writes_frequency_factors(tmp_path, tied_model):
    """A Llama-3.2-style config (rope_type llama3) carries the per-frequency divisors llama.cpp needs."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from infir.export.gguf_export import export_gguf

    config = AutoConfig.from_pretrained(str(tied_model))
    config.rope_parameters = {
        "rope_type": "llama3",
        "rope_theta": 500000.0,
        "factor": 32.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 64,
    }
    model = AutoModelForCausalLM.from_config(config)
    model.save_pretrained(tmp_path / "m")
    AutoTokenizer.from_pretrained(str(tied_model)).save_pretrained(tmp_path / "m")
    export_gguf(tmp_path / "m", tmp_path / "m.gguf", "f16", log=lambda *_: None)
    reader, _ = _fields(tmp_path / "m.gguf")
    freqs = next(t for t in reader.tensors if t.name == "rope_freqs.weight")
    factors = np.asarray(freqs.data)
    assert factors.shape == (config.hidden_size // config.num_attention_heads // 2,)
    assert factors[0] == pytest.approx(1.0) and factors[-1] == pytest.approx(32.0)


def test_bad_inputs_name_the_problem(tmp_path, tied_model):
    from infir.export.gguf_export import ExportError, export_gguf

    with pytest.raises(ExportError, match="config.json"):
        export_gguf(tmp_path, tmp_path / "x.gguf", "f16")
    with pytest.raises(ExportError, match="quant 'q5_k'"):
        export_gguf(tied_model, tmp_path / "x.gguf", "q5_k")
