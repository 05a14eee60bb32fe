from __future__ import annotations

import pytest

from infir.data.builtin import iter_builtin
from infir.tokenize.config import TokenizerConfig
from infir.tokenize.tokenizer import train_tokenizer


@pytest.fixture(scope="session")
def chat_tokenizer(tmp_path_factory):
    texts = [d["text"] for d in iter_builtin("python_docs", max_docs=60)]
    texts += [d["text"] for d in iter_builtin("reasoning_gym", docs_per_family=5)]
    out = tmp_path_factory.mktemp("tok")
    train_tokenizer(texts, TokenizerConfig(vocab_size=800), out, log=lambda *_: None)
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(out)
