"""Train a byte-level BPE tokenizer, or load an existing one; save so `AutoTokenizer` loads it.

Trained tokenizers are byte-level (every string round-trips: decode(encode(x)) == x), have no
normalizer (normalizing would break the round trip), split numbers into single digits before
BPE, and carry the special tokens `<|endoftext|>` (document end, the base-model eos),
`<|pad|>`, `<|im_start|>`, `<|im_end|>` and the ChatML template (see `chat.py`).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from infir.tokenize.chat import CHATML_TEMPLATE, has_chatml_tokens
from infir.tokenize.config import ENDOFTEXT, PAD, TokenizerConfig

# How tokenizers in the wild name their special tokens, for a bare tokenizer.json that does not say.
_KNOWN_EOS = (ENDOFTEXT, "<|end_of_text|>", "</s>", "<eos>")
_KNOWN_BOS = ("<|begin_of_text|>", "<s>", "<bos>")
_KNOWN_PAD = (PAD, "<pad>", "<|finetune_right_pad_id|>")
_KNOWN_UNK = ("<unk>",)


def build_bpe(split_digits: bool = True) -> Tokenizer:
    """An untrained byte-level BPE with our pre-tokenization and decoding."""
    tok = Tokenizer(models.BPE())
    steps = [pre_tokenizers.Digits(individual_digits=True)] if split_digits else []
    # GPT-2's regex split on top of byte-level mapping; no prefix space so the round trip is exact.
    steps.append(pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence(steps)
    tok.decoder = decoders.ByteLevel()
    return tok


def _capped(texts: Iterable[str], max_chars: int, counter: list[int]) -> Iterator[str]:
    for text in texts:
        if counter[0] >= max_chars:
            return
        text = text[: max_chars - counter[0]]
        counter[0] += len(text)
        yield text


def train_tokenizer(
    texts: Iterable[str], cfg: TokenizerConfig, out_dir: Path | None = None, log=print
) -> PreTrainedTokenizerFast:
    """Train on up to `cfg.max_train_chars` characters of `texts`; save to `out_dir` when given."""
    tok = build_bpe(cfg.split_digits)
    trainer = trainers.BpeTrainer(
        vocab_size=cfg.vocab_size,
        min_frequency=cfg.min_frequency,
        special_tokens=list(cfg.special_tokens),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    used = [0]
    t0 = time.time()
    tok.train_from_iterator(_capped(texts, cfg.max_train_chars, used), trainer)
    if used[0] == 0:
        raise ValueError("train_tokenizer: no text to train on")
    log(
        f"trained a {tok.get_vocab_size()}-token byte-level BPE on {used[0] / 1e6:.2f}M chars "
        f"in {time.time() - t0:.1f}s"
    )
    hf = wrap_trained(tok, cfg.special_tokens)
    if out_dir is not None:
        save_tokenizer(hf, out_dir)
    return hf


def wrap_trained(tok: Tokenizer, special_tokens: list[str]) -> PreTrainedTokenizerFast:
    extra = [t for t in special_tokens if t not in (ENDOFTEXT, PAD)]
    hf = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=ENDOFTEXT,
        pad_token=PAD,
        extra_special_tokens=extra,
        clean_up_tokenization_spaces=False,
    )
    if has_chatml_tokens(hf):
        hf.chat_template = CHATML_TEMPLATE
    return hf


def save_tokenizer(tokenizer, out_dir: Path) -> Path:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def load_tokenizer(path_or_name: str | Path):
    """A tokenizer by directory, `tokenizer.json` file, or Hugging Face name (base model's tokenizer).

    A bare `tokenizer.json` carries no eos/bos/pad names; they are taken from the common spellings
    (`<|endoftext|>`, `</s>`, `<s>`, ...) present among its added tokens.
    """
    path = Path(path_or_name)
    if path.is_file():
        tok = PreTrainedTokenizerFast(tokenizer_file=str(path), clean_up_tokenization_spaces=False)
        added = {t.content for t in tok.backend_tokenizer.get_added_tokens_decoder().values()}
        for attr, names in (
            ("eos_token", _KNOWN_EOS),
            ("bos_token", _KNOWN_BOS),
            ("pad_token", _KNOWN_PAD),
            ("unk_token", _KNOWN_UNK),
        ):
            found = next((n for n in names if n in added), None)
            if found is not None:
                setattr(tok, attr, found)
    else:
        try:
            tok = AutoTokenizer.from_pretrained(str(path_or_name))
        except OSError as e:
            raise FileNotFoundError(
                f"cannot load tokenizer {str(path_or_name)!r}: not a tokenizer directory "
                f"or tokenizer.json, and not loadable from the hub ({e})"
            ) from e
    if tok.chat_template is None and has_chatml_tokens(tok):
        tok.chat_template = CHATML_TEMPLATE
    if document_end_token(tok) is None:
        raise ValueError(
            f"tokenizer {str(path_or_name)!r} has no end-of-document token "
            f"(none of {list(_KNOWN_EOS)} and no eos_token)"
        )
    return tok


def document_end_token(tokenizer) -> str | None:
    """The token appended after every document: `<|endoftext|>` when present, else the eos."""
    if ENDOFTEXT in tokenizer.get_vocab():
        return ENDOFTEXT
    return tokenizer.eos_token


def tokenizer_fingerprint(tokenizer_dir: Path) -> str:
    """Hash of the saved tokenizer; shards record it so a changed tokenizer never mixes with old shards."""
    h = hashlib.sha256()
    for name in ("tokenizer.json", "tokenizer_config.json"):
        p = Path(tokenizer_dir) / name
        if p.exists():
            h.update(name.encode())
            h.update(p.read_bytes())
    return h.hexdigest()[:16]
