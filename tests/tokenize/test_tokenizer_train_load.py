"""Trained tokenizer: exact round trip, digit splitting, special tokens, chat template, loading."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from infir.tokenize.chat import chat_stop_token_ids, use_chat_eos
from infir.tokenize.config import ENDOFTEXT, IM_END, IM_START, PAD, TokenizerConfig
from infir.tokenize.tokenizer import document_end_token, load_tokenizer, train_tokenizer


@pytest.fixture(scope="module")
def saved(tmp_path_factory, corpus_docs):
    out = tmp_path_factory.mktemp("tok")
    texts = (d["text"] for d in corpus_docs)
    train_tokenizer(texts, TokenizerConfig(vocab_size=1024), out, log=lambda *_: None)
    return out


@pytest.fixture(scope="module")
def tok(saved):
    return AutoTokenizer.from_pretrained(saved)


def test_round_trip_mixed_corpus(tok, corpus_docs, multilingual):
    odd = ["\x00\x7f control \x1b[31m", "🤖" * 50, " x", "\n"]
    texts = [d["text"] for d in corpus_docs] + multilingual + odd
    for text in texts:
        ids = tok.encode(text, add_special_tokens=False)
        assert tok.decode(ids) == text, text[:80]
    # characters that never occurred in training still round-trip (byte-level fallback)
    unseen = "Ꙛ 𓀀 ᚠᛇᚻ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢"
    assert tok.decode(tok.encode(unseen, add_special_tokens=False)) == unseen


def test_numbers_split_into_single_digits(tok):
    tokens = tok.convert_ids_to_tokens(tok.encode("x = 1234567 + 89", add_special_tokens=False))
    digit_tokens = [t for t in tokens if any(c.isdigit() for c in t)]
    assert digit_tokens == list("123456789")


def test_vocab_size_and_special_tokens(tok):
    assert len(tok) == 1024
    vocab = tok.get_vocab()
    assert all(t in vocab for t in (ENDOFTEXT, PAD, IM_START, IM_END))
    assert tok.eos_token == ENDOFTEXT and tok.pad_token == PAD and tok.pad_token_id != tok.eos_token_id
    assert tok.bos_token is None
    # specials are single tokens, never split
    assert tok.encode(f"{IM_START}user", add_special_tokens=False)[0] == vocab[IM_START]
    assert document_end_token(tok) == ENDOFTEXT


def test_chat_template_assistant_mask(tok):
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is 12+30?"},
        {"role": "assistant", "content": "12+30 = 42. The answer is 42."},
        {"role": "user", "content": "And 2+2?"},
        {"role": "assistant", "content": "The answer is 4."},
    ]
    out = tok.apply_chat_template(
        messages, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
    )
    ids, mask = out["input_ids"], out["assistant_masks"]
    assert len(ids) == len(mask)
    spans, current = [], []
    for i, m in zip(ids, mask):
        if m:
            current.append(i)
        elif current:
            spans.append(current)
            current = []
    assert [tok.decode(s) for s in spans] == [
        f"12+30 = 42. The answer is 42.{IM_END}",
        f"The answer is 4.{IM_END}",
    ]
    text = tok.apply_chat_template(messages[:2], tokenize=False, add_generation_prompt=True)
    assert text == (
        f"{IM_START}system\nBe brief.{IM_END}\n{IM_START}user\nWhat is 12+30?{IM_END}\n{IM_START}assistant\n"
    )


def test_chat_eos_stops_at_end_of_turn(saved):
    from transformers import GenerationConfig

    tok = AutoTokenizer.from_pretrained(saved)
    im_end, endoftext = tok.convert_tokens_to_ids(IM_END), tok.convert_tokens_to_ids(ENDOFTEXT)
    assert chat_stop_token_ids(tok) == [im_end, endoftext]

    class FakeModel:  # use_chat_eos only touches the two config objects
        generation_config = GenerationConfig()
        config = type("C", (), {"eos_token_id": None})()

    model = FakeModel()
    stops = use_chat_eos(tok, model)
    assert tok.eos_token == IM_END
    assert model.generation_config.eos_token_id == stops == [im_end, endoftext]
    assert model.generation_config.pad_token_id == tok.convert_tokens_to_ids(PAD)


def test_train_is_deterministic(tmp_path, corpus_docs):
    cfg = TokenizerConfig(vocab_size=600, max_train_chars=200_000)
    a = train_tokenizer((d["text"] for d in corpus_docs), cfg, tmp_path / "a", log=lambda *_: None)
    b = train_tokenizer((d["text"] for d in corpus_docs), cfg, tmp_path / "b", log=lambda *_: None)
    assert a.backend_tokenizer.to_str() == b.backend_tokenizer.to_str()
    saved_a, saved_b = (tmp_path / name / "tokenizer.json" for name in "ab")
    assert saved_a.read_bytes() == saved_b.read_bytes()


def test_config_requires_document_end_and_pad():
    with pytest.raises(ValueError, match="must include"):
        TokenizerConfig(special_tokens=[IM_START, IM_END])


def test_load_by_path_and_directory(saved):
    by_dir = load_tokenizer(saved)
    assert by_dir.eos_token == ENDOFTEXT and by_dir.chat_template
    by_file = load_tokenizer(saved / "tokenizer.json")  # a bare tokenizer.json: specials inferred
    assert by_file.eos_token == ENDOFTEXT and by_file.pad_token == PAD
    sample = "héllo 42"
    assert by_file.encode(sample, add_special_tokens=False) == by_dir.encode(sample, add_special_tokens=False)


def test_missing_tokenizer_fails_clearly(tmp_path):
    with pytest.raises((FileNotFoundError, OSError), match="no-such-tokenizer"):
        load_tokenizer(str(tmp_path / "no-such-tokenizer"))


def test_load_real_llama_tokenizer(shared):
    tok = load_tokenizer(shared / "tokenizers" / "llama-test-tokenizer.json")
    assert tok.eos_token == "</s>" and tok.bos_token == "<s>"
    assert document_end_token(tok) == "</s>"
    ids = tok.encode("Hello world, 12345!")
    assert ids[0] == tok.bos_token_id  # its post-processor prepends BOS, as Llama was trained
    assert tok.decode(ids[1:]) == "Hello world, 12345!"
