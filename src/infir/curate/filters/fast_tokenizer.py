"""A regex word splitter that follows spaCy's English tokenizer closely enough for datatrove's rules.

datatrove's Gopher, C4 and FineWeb rules count words and sentences with spaCy (about 10 ms per
page here, the bottleneck of its filters, and spaCy is a heavy install). The rules themselves stay
datatrove's: this class is a `WordTokenizer` passed as their `language`. Like spaCy it splits on
whitespace, then peels prefix and suffix punctuation, English clitics ("n't", "'s") and infix
hyphens and slashes, keeping abbreviations ("e.g.", "U.S.", "Mr.") and numbers ("3.5") whole;
sentences end at ., ! or ? (spaCy's sentencizer). `tests/curate/test_fast_rules.py` checks that the
rules decide the same with it as with spaCy on the reference corpus.
"""

from __future__ import annotations

import re

from datatrove.utils.word_tokenizers import WordTokenizer

_PREFIX = re.compile(r"""^(?:\.\.\.|--|[§%=≈~#@&+*\-$£€¥"'“”‘’`(\[{<«»„¡¿…:;,!?/\\|—–])""")
_SUFFIX = re.compile(r"""(?:\.\.\.|'s|'S|’s|’S|n't|N'T|n’t|'re|'ll|'ve|'m|'d|’re|’ll|’ve|’m|’d"""
                     r"""|[%"'”’`)\]}>»…,;:!?—–°]|(?<=[^\W\d_]{2})\.|(?<=[\d)\]"'%])\.)$""")
_ABBREV = re.compile(r"^(?:[^\W\d_]\.){2,}$|^(?:Mr|Mrs|Ms|Dr|Prof|St|Jr|Sr|vs|etc|e\.g|i\.e|Inc|Ltd|Co|No)\.$|"
                     r"^[A-Z]\.$")
_INFIX = re.compile(r"(?<=[^\W\d_])(--|-|/|—|–)(?=[^\W\d_])|(--)|(?<=[^\W\d_])(\.\.\.)(?=\S)")
_URL = re.compile(r"^(?:[a-zA-Z][\w+.-]*://\S+|www\.\S+|[\w.+-]+@[\w-]+\.[\w.]+)$")
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"'”’)\]]*\s+")


def _split_chunk(chunk: str, out: list[str]) -> None:
    if _URL.match(chunk) or _ABBREV.match(chunk):
        out.append(chunk)
        return
    suffixes: list[str] = []
    while chunk:
        m = _PREFIX.match(chunk)
        if m and len(chunk) > len(m.group()):
            out.append(m.group())
            chunk = chunk[m.end():]
            continue
        if _ABBREV.match(chunk):
            break
        m = _SUFFIX.search(chunk)
        if m and m.start() > 0:
            suffixes.append(m.group())
            chunk = chunk[:m.start()]
            continue
        break
    if chunk:
        start = 0
        for m in _INFIX.finditer(chunk):
            if m.start() > start:
                out.append(chunk[start:m.start()])
            out.append(m.group())
            start = m.end()
        if start < len(chunk):
            out.append(chunk[start:])
    out.extend(reversed(suffixes))


class FastEnglishTokenizer(WordTokenizer):
    def __init__(self):
        super().__init__("eng")

    def word_tokenize(self, text: str) -> list[str]:
        out: list[str] = []
        for chunk in text.split():
            _split_chunk(chunk, out)
        return out

    def sent_tokenize(self, text: str) -> list[str]:
        return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]

    def span_tokenize(self, text: str) -> list[tuple[int, int]]:
        spans, start = [], 0
        for m in _SENTENCE_END.finditer(text):
            spans.append((start, m.start()))
            start = m.end()
        if start < len(text) or not spans:
            spans.append((start, len(text)))
        return spans

    def __hash__(self) -> int:  # datatrove caches splits per (text, mode, language)
        return hash("infir-fast-english")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FastEnglishTokenizer)
