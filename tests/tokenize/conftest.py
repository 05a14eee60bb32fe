"""Small curated-format corpora and a tokenized run directory, made once per test session."""

from __future__ import annotations

import gzip
import itertools
import json
import random
from pathlib import Path

import pytest

from infir.data.builtin import iter_builtin
from infir.tokenize.config import TokenizeConfig, TokenizerConfig
from infir.tokenize.stage import tokenize_corpus

# Text the tokenizer must round-trip exactly: scripts, emoji, combining marks, odd whitespace.
MULTILINGUAL = [
    "Ünïcödé façade, naïve café — «quotes» and ‘curly’ ones… 1½ cups, 25°C, €10.",
    "日本語のテキストと漢字、ひらがな、カタカナ。中文句子：我们喜欢数学 12345。",
    "Русский текст, ελληνικά γράμματα, עברית מימין לשמאל, العربية أيضاً.",
    "Emoji 🤖🧮👩🏽‍💻 and flags 🇫🇷🇯🇵; zero\u200bwidth, combining e\u0301 vs é, NBSP\u00a0here.",
    "Tabs\tand\r\nCRLF lines\r\n  leading spaces,   runs of spaces, trailing   \n\n\n",
    "Math: ∑_{i=1}^{n} i = n(n+1)/2, √2 ≈ 1.41421356, π ≈ 3.14159, 10^100, -0.5e-3, 007.",
    "Literal special text <|endoftext|> and <|im_start|> inside a document stays text.",
    "",
]


def _docs(n_code: int = 30, n_docs: int = 30, math_per_family: int = 8) -> list[dict]:
    docs = list(itertools.islice(iter_builtin("python_stdlib", max_docs=n_code, max_bytes=12_000), n_code))
    docs += list(iter_builtin("python_docs", max_docs=n_docs))
    docs += list(iter_builtin("reasoning_gym", docs_per_family=math_per_family))
    for i, text in enumerate(MULTILINGUAL):
        docs.append(
            {
                "id": f"ml/{i}",
                "text": text,
                "url": f"test://ml/{i}",
                "metadata": {"domain": "web", "source": "test"},
            }
        )
    random.Random(0).shuffle(docs)
    return docs


def write_curated(folder: Path, docs: list[dict], files: int = 2, mixtures: dict | None = None) -> Path:
    kept = folder / "kept"
    kept.mkdir(parents=True, exist_ok=True)
    for k in range(files):
        with gzip.open(kept / f"{k:05d}.jsonl.gz", "wt", encoding="utf-8") as f:
            for doc in docs[k::files]:
                f.write(json.dumps(doc, ensure_ascii=False) + "\n")
    mixtures = mixtures or {
        "pretrain": {"weights": {"web": 0.5, "code": 0.3, "math": 0.2}, "domains": {}},
        "anneal": {"weights": {"math": 0.6, "code": 0.4}, "domains": {}},
    }
    (folder / "mixtures.json").write_text(json.dumps(mixtures))
    return folder


SMALL_TOKENIZER = TokenizerConfig(vocab_size=1024)
SMALL_SHARDS = {"shard_size_mb": 0.1, "workers": 0, "chunk_docs": 16, "val_min_docs": 3}


@pytest.fixture(scope="session")
def multilingual() -> list[str]:
    return list(MULTILINGUAL)


@pytest.fixture(scope="session")
def make_curated():
    """`make_curated(folder, docs, files=2, mixtures=None)` writes a curate-stage output folder."""
    return write_curated


@pytest.fixture(scope="session")
def small_configs():
    return SMALL_TOKENIZER, TokenizeConfig(**SMALL_SHARDS)


@pytest.fixture(scope="session")
def corpus_docs() -> list[dict]:
    return _docs()


@pytest.fixture(scope="session")
def curated(tmp_path_factory, corpus_docs) -> Path:
    return write_curated(tmp_path_factory.mktemp("curate"), corpus_docs)


@pytest.fixture(scope="session")
def tokenized(tmp_path_factory, curated) -> Path:
    """A tokenize stage output (trained 1k tokenizer, several shard jobs per file)."""
    out = tmp_path_factory.mktemp("tokenize")
    tokenize_corpus(
        curated / "kept",
        out,
        SMALL_TOKENIZER,
        TokenizeConfig(**SMALL_SHARDS),
        curated / "mixtures.json",
        log=lambda *_: None,
        progress=False,
    )
    return out
