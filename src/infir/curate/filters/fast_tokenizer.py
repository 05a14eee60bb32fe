"""A word and sentence splitter that decides like spaCy's English tokenizer, for datatrove's rules.

datatrove's Gopher, C4 and FineWeb rules count words and sentences with spaCy: most of their time
goes to building spaCy documents (token objects, lexemes), and spaCy is a heavy install. The rules
stay datatrove's; this class is the `WordTokenizer` they are given as their `language`.

The algorithm is spaCy's, on our own rule tables (`english_rules`): split on whitespace; for each
chunk, unless it is a special case (contraction, abbreviation, emoticon), peel prefixes and
suffixes in turns, stopping early when what is left is a special case; keep web addresses whole;
split the rest at infixes; then merge neighbouring pieces that together form a special case (an
emoticon such as "):" at the end of "f(x):"). Chunks repeat, so their splits are cached.
Sentences end, as with spaCy's sentencizer, at the first non-punctuation token after a sentence
mark. `tests/curate/test_fast_rules.py` measures how often datatrove's rules decide the same with
it as with spaCy on the reference corpus.
"""

from __future__ import annotations

import unicodedata

from datatrove.utils.word_tokenizers import WordTokenizer

from infir.curate.filters import english_rules as rules

_CACHE_LIMIT = 500_000


class FastEnglishTokenizer(WordTokenizer):
    def __init__(self):
        super().__init__("eng")
        self._cache: dict[str, tuple[str, ...]] = {}

    def __getstate__(self):  # the cache and compiled tables are rebuilt in each worker
        return {"language": self.language}

    def __setstate__(self, state):
        self.__init__()

    def _tables(self):
        if not hasattr(self, "_specials"):
            self._specials = rules.special_cases()
            self._merge_keys = {k for k in self._specials if not k.isalnum()}
            self._patterns = {}
        return self

    def _patterns_for(self, ascii_only: bool):
        """(prefix match, suffix match, infix finditer) for pure-ASCII chunks or for the others
        (whose patterns hold the large symbol class, built when first needed)."""
        patterns = self._patterns.get(ascii_only)
        if patterns is None:
            non_ascii = not ascii_only
            patterns = self._patterns[ascii_only] = (
                rules.prefix_regex(non_ascii).match,
                rules.suffix_regex(non_ascii).match,
                rules.infix_regex(non_ascii).finditer,
            )
        return patterns

    def split_chunk(self, chunk: str) -> tuple[str, ...]:
        tokens = self._cache.get(chunk)
        if tokens is None:
            if len(self._cache) > _CACHE_LIMIT:
                self._cache.clear()
            tokens = self._cache[chunk] = tuple(self._merge_specials(self._split(chunk)))
        return tokens

    def _split(self, chunk: str) -> list[str]:
        specials = self._specials
        if chunk in specials:
            return specials[chunk]
        prefix_at, suffix_at, infixes = self._patterns_for(chunk.isascii())
        if chunk.isalnum():  # no prefix, infix or address: at most a unit after a number ("10km")
            if not any(c.isdigit() for c in chunk):
                return [chunk]
            suf = rules.suffix_length(chunk, suffix_at)
            return [chunk[:-suf], chunk[-suf:]] if 0 < suf < len(chunk) else [chunk]
        prefixes, suffixes = [], []
        s, last = chunk, -1
        while s and len(s) != last and s not in specials:
            last = len(s)
            m = prefix_at(s)
            pre = m.end() if m else 0
            if pre and s[pre:] in specials:
                prefixes.append(s[:pre])
                s = s[pre:]
                break
            suf = rules.suffix_length(s[pre:], suffix_at)
            if suf and s[:-suf] in specials:
                suffixes.append(s[-suf:])
                s = s[:-suf]
                break
            if pre and suf and pre + suf <= len(s):
                prefixes.append(s[:pre])
                suffixes.append(s[-suf:])
                s = s[pre:-suf]
            elif pre:
                prefixes.append(s[:pre])
                s = s[pre:]
            elif suf:
                suffixes.append(s[-suf:])
                s = s[:-suf]
        tokens = prefixes
        if s:
            if s in specials:
                tokens += specials[s]
            elif rules.URL.match(s):
                tokens.append(s)
            else:
                start = 0
                for m in infixes(s):
                    if m.start() == 0:  # an infix cannot start the piece
                        continue
                    if m.start() != start:
                        tokens.append(s[start : m.start()])
                    if m.end() != m.start():
                        tokens.append(m.group())
                    start = m.end()
                if start < len(s):
                    tokens.append(s[start:])
        tokens.extend(reversed(suffixes))
        return tokens

    def _merge_specials(self, tokens: list[str]) -> list[str]:
        """Neighbouring pieces that spell a special case (an emoticon, "and/or") become it."""
        if len(tokens) < 2:
            return tokens
        out, i = [], 0
        while i < len(tokens):
            for width in (4, 3, 2):
                joined = "".join(tokens[i : i + width])
                if i + width <= len(tokens) and joined in self._merge_keys:
                    out += self._specials[joined]
                    i += width
                    break
            else:
                out.append(tokens[i])
                i += 1
        return out

    def word_tokenize(self, text: str) -> list[str]:
        self._tables()
        out: list[str] = []
        for chunk in text.split():
            out.extend(self.split_chunk(chunk))
        return out

    def span_tokenize(self, text: str) -> list[tuple[int, int]]:
        """Sentence spans: a sentence starts at the first token after a sentence mark that is not
        punctuation itself."""
        self._tables()
        spans, start, seen_end, pos, end = [], None, False, 0, 0
        for chunk in text.split():
            pos = text.index(chunk, pos)
            for token in self.split_chunk(chunk):
                where = text.index(token, pos) if token else pos
                if start is None:
                    start = where
                elif seen_end and token not in rules.SENTENCE_END and not _is_punct(token):
                    spans.append((start, end))
                    start, seen_end = where, False
                if token in rules.SENTENCE_END:
                    seen_end = True
                pos = end = where + len(token)
        if start is not None:
            spans.append((start, end))
        return spans or [(0, len(text))]

    def sent_tokenize(self, text: str) -> list[str]:
        return [text[a:b].strip() for a, b in self.span_tokenize(text) if text[a:b].strip()]

    def __hash__(self) -> int:  # datatrove caches splits per (text, mode, language)
        return hash("infir-fast-english")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FastEnglishTokenizer)


def _is_punct(token: str) -> bool:
    return all(unicodedata.category(c).startswith("P") for c in token)
