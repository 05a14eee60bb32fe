"""The tokenizer part of a GGUF file: the vocabulary, its merges or scores, pre-tokenizer, specials, template.

Two kinds of tokenizer are written:

  - byte-level BPE (GPT-2 style: infir's own, SmolLM's, Llama 3's) as llama.cpp's `gpt2` model with merges;
  - SentencePiece-style BPE (Llama 2, Mistral, TinyLlama: `▁` for spaces, byte fallback to `<0xXX>`
    tokens) as llama.cpp's `llama` model, which merges adjacent pieces by score: a piece's score is minus
    the rank of the first merge that makes it, so the highest-scoring pair is the merge BPE applies first.

llama.cpp re-implements tokenization, so the file must name a pre-tokenizer that splits text exactly
as ours does before BPE. llama.cpp knows pre-tokenizers by name only (`tokenizer.ggml.pre`); we read
the tokenizer's own pre-tokenizer description and map the layouts we know:

  - individual digits, then GPT-2's byte-level regex (infir's trained tokenizers, SmolLM's) -> `smollm`
    (llama.cpp splits on `\\p{N}` first, then applies the GPT-2 regex; it also keeps spaces
    around punctuation when decoding, as our tokenizers do with clean_up_tokenization_spaces off);
  - GPT-2's byte-level regex alone -> `gpt-2`;
  - Llama 3's split regex then byte-level without regex -> `llama-bpe`.

Anything else fails with the layout it found, unless the caller names the pre-tokenizer itself.
The test suite checks llama.cpp's tokenization of a mixed text token for token against ours.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LLAMA3_PATTERN = (
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*"
    "|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
)
# Tokens chat models end a turn with; llama.cpp finds them by text too, we also mark them control.
END_OF_TURN = ("<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>")


class VocabError(ValueError):
    """A tokenizer this exporter cannot describe to llama.cpp faithfully."""


@dataclass
class GGUFVocab:
    tokens: list[str]
    token_types: list[int]
    merges: list[str]
    pre: str
    bos_id: int | None
    eos_id: int | None
    pad_id: int | None
    eot_id: int | None
    chat_template: str | None
    model: str = "gpt2"  # llama.cpp's tokenizer family: gpt2 (byte-level BPE) or llama (SentencePiece)
    scores: list[float] | None = None  # llama: merge priority per token
    add_bos: bool = False
    unk_id: int | None = None

    def write(self, writer) -> None:
        writer.add_tokenizer_model(self.model)
        writer.add_tokenizer_pre(self.pre)
        writer.add_token_list(self.tokens)
        writer.add_token_types(self.token_types)
        if self.scores is not None:
            writer.add_token_scores(self.scores)
            writer.add_add_space_prefix(True)  # the `▁` SentencePiece puts before the text
        if self.merges:
            writer.add_token_merges(self.merges)
        # Our byte-level tokenizers add no BOS (llama.cpp's BPE default, token 11, would be some random
        # token); SentencePiece-style ones start every text with it, as their post-processor does.
        writer.add_add_bos_token(self.add_bos)
        writer.add_add_eos_token(False)
        for ident, add in (
            (self.bos_id, writer.add_bos_token_id),
            (self.eos_id, writer.add_eos_token_id),
            (self.pad_id, writer.add_pad_token_id),
            (self.eot_id, writer.add_eot_token_id),
            (self.unk_id, writer.add_unk_token_id),
        ):
            if ident is not None:
                add(ident)
        if self.chat_template:
            writer.add_chat_template(self.chat_template)


def _component(node: dict | None) -> list[dict]:
    if node is None:
        return []
    if node.get("type") == "Sequence":
        return [
            c for child in node.get("pretokenizers", node.get("normalizers", [])) for c in _component(child)
        ]
    return [node]


def _pattern(split: dict) -> str | None:
    pattern = split.get("pattern", {})
    return pattern.get("Regex", pattern.get("String"))


def detect_pre_tokenizer(tokenizer_json: dict) -> str:
    """llama.cpp's name for the pre-tokenizer described in `tokenizer.json`, or VocabError."""
    if _component(tokenizer_json.get("normalizer")):
        raise VocabError(
            f"the tokenizer has a normalizer ({tokenizer_json['normalizer'].get('type')}); "
            "llama.cpp's byte-level BPE applies none, so tokenization would differ"
        )
    steps = _component(tokenizer_json.get("pre_tokenizer"))
    kinds = [s.get("type") for s in steps]
    if (
        kinds == ["Digits", "ByteLevel"]
        and steps[0].get("individual_digits")
        and steps[1].get("use_regex", True)
        and not steps[1].get("add_prefix_space", False)
    ):
        return "smollm"
    if kinds == ["ByteLevel"] and steps[0].get("use_regex", True) and not steps[0].get("add_prefix_space"):
        return "gpt-2"
    if (
        kinds == ["Split", "ByteLevel"]
        and _pattern(steps[0]) == LLAMA3_PATTERN
        and not steps[1].get("use_regex", True)
    ):
        return "llama-bpe"
    raise VocabError(
        f"pre-tokenizer {kinds} ({json.dumps(tokenizer_json.get('pre_tokenizer'))[:300]}) has no "
        "known llama.cpp equivalent; pass tokenizer_pre=NAME if you know one that splits alike"
    )


def _merges(model: dict) -> list[str]:
    # tokenizers >= 0.20 saves merges as [left, right] pairs, older versions as "left right" strings.
    return [m if isinstance(m, str) else f"{m[0]} {m[1]}" for m in model.get("merges", [])]


def strip_generation_tags(template: str) -> str:
    """Drop transformers' `{% generation %}` markers: they only build assistant masks, render nothing,
    and are unknown to Jinja engines outside transformers (llama-cpp-python's, Ollama's)."""
    import re

    return re.sub(r"\{%-?\s*(end)?generation\s*-?%\}", "", template)


def build_vocab(
    tokenizer, vocab_size: int, eos_ids: list[int] | None = None, pre: str | None = None
) -> GGUFVocab:
    """The GGUF vocabulary of a transformers fast tokenizer, padded to the model's `vocab_size` rows.

    `eos_ids`: the model's generation stop ids (first = eos); defaults to the tokenizer's eos.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise VocabError(f"{type(tokenizer).__name__} is not a fast (tokenizers) tokenizer")
    data: dict[str, Any] = json.loads(backend.to_str())
    model = data.get("model", {})
    if is_sentencepiece_bpe(data):
        return _sentencepiece_vocab(tokenizer, backend, data, vocab_size, eos_ids)
    if model.get("type") != "BPE":
        raise VocabError(f"tokenizer model is {model.get('type')}; this exporter writes byte-level BPE only")
    if _component(data.get("pre_tokenizer")) and not any(
        s.get("type") == "ByteLevel" for s in _component(data.get("pre_tokenizer"))
    ):
        raise VocabError("tokenizer is BPE but not byte-level (no ByteLevel pre-tokenizer)")
    pre = pre or detect_pre_tokenizer(data)

    vocab: dict[str, int] = backend.get_vocab(with_added_tokens=True)
    if max(vocab.values()) >= vocab_size:
        raise VocabError(
            f"tokenizer has id {max(vocab.values())} but the model has only {vocab_size} embedding rows"
        )
    added = {t.content: t for t in backend.get_added_tokens_decoder().values()}
    by_id = {i: t for t, i in vocab.items()}
    tokens, types = [], []
    for i in range(vocab_size):
        text = by_id.get(i)
        if text is None:  # embedding rows past the tokenizer (padded vocabularies)
            tokens.append(f"[PAD{i}]")
            types.append(5)  # UNUSED
        elif text in added:
            tokens.append(text)
            # CONTROL tokens are matched whole in text only when asked (parse_special), like HF's specials.
            types.append(3 if added[text].special or text in END_OF_TURN else 4)
        else:
            tokens.append(text)
            types.append(1)  # NORMAL

    stops = list(eos_ids or [])
    eos = stops[0] if stops else tokenizer.eos_token_id
    eot = next((vocab[t] for t in END_OF_TURN if t in vocab and vocab[t] in stops), None)
    # Without a BOS of its own (add_bos is off), point it at end-of-text as Qwen-style tokenizers do.
    bos = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else vocab.get("<|endoftext|>", eos)
    template = tokenizer.chat_template if isinstance(tokenizer.chat_template, str) else None
    return GGUFVocab(
        tokens=tokens,
        token_types=types,
        merges=_merges(model),
        pre=pre,
        bos_id=bos,
        eos_id=eos,
        pad_id=tokenizer.pad_token_id,
        eot_id=eot,
        chat_template=strip_generation_tags(template) if template else None,
    )


def is_sentencepiece_bpe(data: dict) -> bool:
    """A SentencePiece BPE converted to `tokenizer.json` (Llama 2, Mistral, TinyLlama): byte fallback,
    spaces as `▁` (a normalizer that prepends and replaces, or a Metaspace pre-tokenizer), no byte-level step."""
    model = data.get("model", {})
    if model.get("type") != "BPE" or not model.get("byte_fallback"):
        return False
    norm = [(n.get("type"), n.get("prepend") or n.get("content")) for n in _component(data.get("normalizer"))]
    pre = [p.get("type") for p in _component(data.get("pre_tokenizer"))]
    replaces_spaces = ("Replace", "\u2581") in norm or "Metaspace" in pre
    return replaces_spaces and "ByteLevel" not in pre


def _merge_ranks(model: dict) -> dict[str, int]:
    """Each token made by a merge -> the rank of the first merge that makes it."""
    ranks: dict[str, int] = {}
    for rank, merge in enumerate(_merges(model)):
        left, right = merge.split(" ", 1)
        ranks.setdefault(left + right, rank)
    return ranks


def _sentencepiece_vocab(
    tokenizer, backend, data: dict, vocab_size: int, eos_ids: list[int] | None
) -> GGUFVocab:
    import re

    vocab: dict[str, int] = backend.get_vocab(with_added_tokens=True)
    if max(vocab.values()) >= vocab_size:
        raise VocabError(
            f"tokenizer has id {max(vocab.values())} but the model has only {vocab_size} embedding rows"
        )
    ranks = _merge_ranks(data["model"])
    added = {t.content: t for t in backend.get_added_tokens_decoder().values()}
    unk = data["model"].get("unk_token")
    by_id = {i: t for t, i in vocab.items()}
    tokens, types, scores = [], [], []
    for i in range(vocab_size):
        text = by_id.get(i)
        if text is None:
            tokens.append(f"[PAD{i}]")
            types.append(5)  # UNUSED
            scores.append(-1e9)
            continue
        tokens.append(text)
        if text == unk:
            types.append(2)  # UNKNOWN
        elif re.fullmatch(r"<0x[0-9A-F]{2}>", text):
            types.append(6)  # BYTE: what byte fallback spells unknown characters with
        elif text in added:
            types.append(3 if added[text].special else 4)  # CONTROL, or USER_DEFINED (matched whole in text)
        else:
            types.append(1)  # NORMAL
        scores.append(-float(ranks[text]) if text in ranks else 0.0)
    stops = list(eos_ids or [])
    eos = stops[0] if stops else tokenizer.eos_token_id
    adds_bos = tokenizer.bos_token_id is not None and tokenizer("a")["input_ids"][:1] == [
        tokenizer.bos_token_id
    ]
    template = tokenizer.chat_template if isinstance(tokenizer.chat_template, str) else None
    return GGUFVocab(
        tokens=tokens,
        token_types=types,
        merges=[],
        pre="default",
        bos_id=tokenizer.bos_token_id,
        eos_id=eos,
        pad_id=tokenizer.pad_token_id,
        eot_id=None,
        chat_template=strip_generation_tags(template) if template else None,
        model="llama",
        scores=scores,
        add_bos=adds_bos,
        unk_id=vocab.get(unk) if unk else None,
    )


def load_tokenizer_dir(path: Path):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(path))
    except (OSError, ValueError) as e:
        raise VocabError(f"{path}: no loadable tokenizer beside the model ({e})") from e
