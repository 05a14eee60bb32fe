"""SentencePiece-style Llama tokenizers (Llama 2, Mistral, TinyLlama: `▁` spaces, byte fallback) exported
as llama.cpp's `llama` vocabulary: llama.cpp tokenizes as transformers does and continues greedily
token for token in f16. The tokenizer is `../shared/tokenizers/llama-test-tokenizer.json` (a Llama-2
style 32k BPE)."""

from __future__ import annotations

import pytest
import torch

from tests.export.conftest import PROMPTS, edge_model
from tests.export.test_llamacpp import MIXED

pytestmark = pytest.mark.shared


@pytest.fixture(scope="module")
def spm_model(shared, tmp_path_factory):
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    out = tmp_path_factory.mktemp("spm-llama")
    tok = PreTrainedTokenizerFast(
        tokenizer_file=str(shared / "tokenizers" / "llama-test-tokenizer.json"),
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
    )
    tok.save_pretrained(out)
    torch.manual_seed(0)
    # Wide initial weights: the top two logits stay far apart, so f16 rounding cannot swap them.
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        initializer_range=0.3,
        tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
    )
    LlamaForCausalLM(config).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def spm_gguf(spm_model, tmp_path_factory):
    from infir.export.gguf_export import export_gguf

    out = tmp_path_factory.mktemp("spm-gguf") / "model-f16.gguf"
    export_gguf(spm_model, out, "f16", log=lambda *_: None)
    return out


def test_the_vocabulary_is_written_as_llama_cpps_sentencepiece_model(spm_model, spm_gguf):
    from gguf import GGUFReader

    reader = GGUFReader(str(spm_gguf))
    field = reader.fields["tokenizer.ggml.model"]
    assert bytes(field.parts[field.data[0]]).decode() == "llama"
    assert "tokenizer.ggml.scores" in reader.fields and "tokenizer.ggml.merges" not in reader.fields


def test_llama_cpp_tokenizes_like_transformers(spm_model, spm_gguf):
    from transformers import AutoTokenizer

    from infir.export.llamacpp import LlamaCppModel

    hf = AutoTokenizer.from_pretrained(str(spm_model))
    llama = LlamaCppModel(spm_gguf, n_ctx=512, threads=1)
    texts = [
        MIXED,
        *PROMPTS,
        *(t[:1500] for t in edge_model.corpus(40, seed=5)[::4]),
        "x",
        " leading space",
        "two  spaces",
        "tab\tand\nnewline",
        "1234567.89",
        "naïve café — 東京",
    ]
    for text in texts:
        assert llama.tokenize(text) == hf(text)["input_ids"], text[:80]


def test_f16_greedy_matches_transformers_token_for_token(spm_model, spm_gguf):
    from infir.export.llamacpp import LlamaCppModel
    from infir.export.torch_runtime import TorchModel

    reference = TorchModel(spm_model, "fp32", threads=1)
    llama = LlamaCppModel(spm_gguf, n_ctx=512, threads=1)
    said = set()
    for prompt in PROMPTS:
        ids = reference.tokenize(prompt)
        assert llama.tokenize(prompt) == ids
        expected = reference.greedy(ids, 24, stop_at_eog=False).token_ids
        got = llama.greedy(ids, 24, stop_at_eog=False).token_ids
        assert got == expected, prompt
        said |= set(expected)
    assert len(said) > 8
