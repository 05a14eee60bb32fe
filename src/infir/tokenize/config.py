"""Config sections of the tokenize stage: which tokenizer, and how documents become shards."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from infir.config_base import Section

ENDOFTEXT = "<|endoftext|>"  # end of document; the EOS of base models
PAD = "<|pad|>"  # padding only, never a document boundary
IM_START = "<|im_start|>"  # chat turn start (ChatML)
IM_END = "<|im_end|>"  # chat turn end; generation stops here in chat models
DEFAULT_SPECIAL_TOKENS = [ENDOFTEXT, PAD, IM_START, IM_END]


class TokenizerConfig(Section):
    """Train a byte-level BPE tokenizer (path_or_name None) or load an existing one.

    Continual pretraining keeps the base model's tokenizer: set `path_or_name` to a local
    directory, a `tokenizer.json` file, or a Hugging Face name (e.g. meta-llama/Llama-3.2-1B).
    The training fields are ignored for a loaded tokenizer.
    """

    path_or_name: str | None = None
    vocab_size: int = Field(8192, ge=300)  # >= 256 byte symbols + specials + some merges
    special_tokens: list[str] = Field(default_factory=lambda: list(DEFAULT_SPECIAL_TOKENS))
    min_frequency: int = Field(2, ge=1)
    max_train_chars: int = Field(20_000_000, ge=1000)  # text sampled from the curated output to train on
    split_digits: bool = True  # one token per digit: small models learn arithmetic far better

    @field_validator("special_tokens")
    @classmethod
    def _specials(cls, tokens: list[str]) -> list[str]:
        if len(set(tokens)) != len(tokens):
            raise ValueError(f"special_tokens has duplicates: {tokens}")
        missing = [t for t in (ENDOFTEXT, PAD) if t not in tokens]
        if missing:
            raise ValueError(
                f"special_tokens must include {missing}: shards end documents with {ENDOFTEXT} "
                f"and batches pad with {PAD}"
            )
        return tokens


class TokenizeConfig(Section):
    """How curated documents become token shards, and the loader defaults that read them."""

    shard_size_mb: float = Field(32.0, gt=0)  # input text per shard job: the unit of parallelism and resume
    dtype: Literal["auto", "uint16", "uint32"] = "auto"  # auto: uint16 when every id fits
    workers: int = Field(2, ge=0)  # encoding processes; 0 encodes in the main process
    chunk_docs: int = Field(256, ge=1)  # documents per encoding task sent to a worker
    default_domain: str = "web"  # domain of documents without metadata.domain
    val_fraction: float = Field(0.01, ge=0, lt=1)  # held-out documents per domain, chosen by id hash
    val_min_docs: int = Field(4, ge=0)  # ... but at least this many per domain (when it has more)
    val_max_docs: int = Field(2000, ge=0)  # ... and at most this many: loss estimates need no more
    seq_len: int = Field(512, ge=8)  # default sequence length of loaders built on this stage's output
    # Override curate's mixture weights: {mix: {domain: weight}}.
    mixtures: dict[str, dict[str, float]] | None = None

    @model_validator(mode="after")
    def _check_mixtures(self) -> TokenizeConfig:
        for mix, weights in (self.mixtures or {}).items():
            if not weights or any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
                raise ValueError(
                    f"tokenize.mixtures.{mix}: weights must be >= 0 with a positive sum, got {weights}"
                )
        return self
