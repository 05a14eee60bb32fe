"""Word and n-gram hashing shared by MinHash dedup and n-gram decontamination.

Words are lowercase `\\w+` runs, so punctuation, case and spacing never hide a copy. Each distinct
word is hashed once per process (xxh3, cached); n-gram hashes then combine word hashes with
numpy in one vectorised pass, with no Python loop over n-grams.
"""

from __future__ import annotations

import re

import numpy as np
import xxhash

_WORD = re.compile(r"\w+")
_CACHE: dict[str, int] = {}
_MASK64 = (1 << 64) - 1
# Odd 64-bit multipliers, one per position in the n-gram.
_POSITION_MULT = np.array([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0xD6E8FEB86659FD93,
                           0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53, 0x94D049BB133111EB, 0xBF58476D1CE4E5B9,
                           0x2545F4914F6CDD1D, 0x5851F42D4C957F2D, 0x14057B7EF767814F, 0x9FB21C651E98DF25],
                          dtype=np.uint64)


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def word_hashes(text: str) -> np.ndarray:
    cache = _CACHE
    out = []
    for w in _WORD.findall(text.lower()):
        h = cache.get(w)
        if h is None:
            h = cache[w] = xxhash.xxh3_64_intdigest(w.encode())
            if len(cache) > 2_000_000:
                cache.clear()
        out.append(h)
    return np.array(out, dtype=np.uint64)


def ngram_hashes(hashes: np.ndarray, n: int) -> np.ndarray:
    """One 64-bit hash per word n-gram; a text shorter than n gives one hash for all its words."""
    if n > len(_POSITION_MULT):
        raise ValueError(f"n-grams up to {len(_POSITION_MULT)} words are supported, not {n}")
    if len(hashes) == 0:
        return hashes
    if len(hashes) < n:
        n = len(hashes)
    count = len(hashes) - n + 1
    with np.errstate(over="ignore"):
        out = hashes[:count] * _POSITION_MULT[0]
        for j in range(1, n):
            out ^= hashes[j:j + count] * _POSITION_MULT[j]
        out ^= out >> np.uint64(29)
    return out
