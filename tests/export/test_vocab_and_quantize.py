"""Tokenizer metadata for llama.cpp, int8 dynamic quantization and the bf16 export."""

from __future__ import annotations

import json

import pytest
import torch
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

from infir.export.gguf_vocab import VocabError, detect_pre_tokenizer, strip_generation_tags


def _described(tok: Tokenizer) -> dict:
    return json.loads(tok.to_str())


def test_pre_tokenizer_names():
    ours = Tokenizer(models.BPE())
    ours.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    assert detect_pre_tokenizer(_described(ours)) == "smollm"
    gpt2 = Tokenizer(models.BPE())
    gpt2.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    assert detect_pre_tokenizer(_described(gpt2)) == "gpt-2"


def test_unknown_pre_tokenizer_or_normalizer_is_refused():
    odd = Tokenizer(models.BPE())
    odd.pre_tokenizer = pre_tokenizers.Whitespace()
    with pytest.raises(VocabError, match="no known llama.cpp equivalent"):
        detect_pre_tokenizer(_described(odd))
    normalized = Tokenizer(models.BPE())
    normalized.normalizer = normalizers.NFKC()
    normalized.pre_tokenizer = pre_tokenizers.ByteLevel()
    with pytest.raises(VocabError, match="normalizer"):
        detect_pre_tokenizer(_described(normalized))


def test_generation_markers_are_dropped_from_template():
    from infir.tokenize.chat import CHATML_TEMPLATE

    stripped = strip_generation_tags(CHATML_TEMPLATE)
    assert "generation %}" not in stripped
    import jinja2

    messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    text = jinja2.Environment().from_string(stripped).render(messages=messages, add_generation_prompt=False)
    assert text == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\nhello<|im_end|>\n"


def test_chat_model_stops_at_end_of_turn(tmp_path, tied_model):
    """After SFT (use_chat_eos) the GGUF's eos/eot is <|im_end|>, so llama.cpp ends the turn there."""
    import gguf
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from infir.export.gguf_export import export_gguf
    from infir.tokenize.chat import use_chat_eos

    model = AutoModelForCausalLM.from_pretrained(str(tied_model))
    tok = AutoTokenizer.from_pretrained(str(tied_model))
    use_chat_eos(tok, model)
    model.save_pretrained(tmp_path / "chat")
    tok.save_pretrained(tmp_path / "chat")
    export_gguf(tmp_path / "chat", tmp_path / "chat.gguf", "q8_0", log=lambda *_: None)
    fields = gguf.GGUFReader(str(tmp_path / "chat.gguf")).fields
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    assert fields["tokenizer.ggml.eos_token_id"].contents() == im_end
    assert fields["tokenizer.ggml.eot_token_id"].contents() == im_end


def test_int8_dynamic_quantization_shrinks_and_keeps_predictions(tied_model):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from infir.export.quantize import linear_weight_bytes, quantize_dynamic_int8

    model = AutoModelForCausalLM.from_pretrained(str(tied_model), dtype=torch.float32).eval()
    q = quantize_dynamic_int8(model)
    assert linear_weight_bytes(q) * 4 == linear_weight_bytes(model)
    assert isinstance(model.lm_head, torch.nn.Linear)  # the source model is untouched
    ids = AutoTokenizer.from_pretrained(str(tied_model))(
        "Question: What is 4 + 9?\nAnswer: 4 + 9 = 13. The answer is 13.\n\nQuestion: What is 2 + 2?"
    )["input_ids"]
    with torch.inference_mode():
        ref = model(input_ids=torch.tensor([ids])).logits[0]
        got = q(input_ids=torch.tensor([ids])).logits[0]
    assert (ref.argmax(-1) == got.argmax(-1)).float().mean() >= 0.9
    assert torch.corrcoef(torch.stack([ref.ravel(), got.ravel()]))[0, 1] > 0.99


def test_hf_bf16_export_loads_and_matches(tmp_path, tied_model):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from infir.export.quantize import export_hf_bf16

    info = export_hf_bf16(tied_model, tmp_path / "hf", log=lambda *_: None)
    assert info["dtype"] == "bfloat16"
    loaded = AutoModelForCausalLM.from_pretrained(str(tmp_path / "hf"))
    assert next(loaded.parameters()).dtype == torch.bfloat16
    src = AutoModelForCausalLM.from_pretrained(str(tied_model), dtype=torch.float32)
    fp32_bytes = sum(p.stat().st_size for p in tied_model.glob("*.safetensors"))
    assert info["bytes"] < 0.6 * fp32_bytes
    ids = torch.tensor([AutoTokenizer.from_pretrained(str(tmp_path / "hf"))("Question: 3 + 4?")["input_ids"]])
    with torch.inference_mode():
        diff = (loaded.float()(input_ids=ids).logits - src(input_ids=ids).logits).abs().max()
    assert diff < 0.1
