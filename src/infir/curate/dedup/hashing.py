"""Word and n-gram hashing shared by MinHash dedup and n-gram decontamination, all in numpy.

Words are runs of word bytes in the UTF-8 text: ASCII letters (case folded), digits, and every
non-ASCII character but the punctuation blocks (U+0080-U+00BF, U+2000-U+207F, U+3000-U+303F:
no-break space, quotes, dashes, ellipsis, CJK full stops), so punctuation, case and spacing never
hide a copy. `_` separates words, as datatrove's MinHash text normalisation does: an identifier
(`PyObject_SetAttr`) is several words, so an edit inside a code or API page changes the shingles
of a few of them, not of a whole identifier, and near copies of such pages keep more shingles in
common (a higher Jaccard similarity, so more of them share a band). A word's
hash is a polynomial hash of its bytes computed for all words of many documents at once from one
prefix sum (with modular inverses of the base, so no loop over words), then mixed (splitmix64).
N-gram hashes combine word hashes with one multiplier per position: no Python loop over n-grams.
"""

from __future__ import annotations

import numpy as np

_U64 = np.uint64
_BASE = 0x100000001B3  # odd, so invertible modulo 2**64
_BASE_INV = pow(_BASE, -1, 1 << 64)
# Odd 64-bit multipliers, one per position in the n-gram.
_POSITION_MULT = np.array(
    [
        0x9E3779B97F4A7C15,
        0xC2B2AE3D27D4EB4F,
        0x165667B19E3779F9,
        0xD6E8FEB86659FD93,
        0xFF51AFD7ED558CCD,
        0xC4CEB9FE1A85EC53,
        0x94D049BB133111EB,
        0xBF58476D1CE4E5B9,
        0x2545F4914F6CDD1D,
        0x5851F42D4C957F2D,
        0x14057B7EF767814F,
        0x9FB21C651E98DF25,
    ],
    dtype=_U64,
)
MAX_NGRAM = len(_POSITION_MULT)
_powers: dict[str, np.ndarray] = {}


def _power_table(name: str, base: int, n: int) -> np.ndarray:
    """base**i mod 2**64 for i < n, grown on demand and kept for the process."""
    table = _powers.get(name)
    if table is None or len(table) < n:
        size = max(n, 1 << 20, 2 * len(table) if table is not None else 0)
        table = np.full(size, base, dtype=_U64)
        table[0] = 1
        with np.errstate(over="ignore"):
            np.cumprod(table, out=table)
        _powers[name] = table
    return table[:n]


def _mix(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        x = x ^ (x >> _U64(30))
        x = x * _U64(0xBF58476D1CE4E5B9)
        x ^= x >> _U64(27)
        x *= _U64(0x94D049BB133111EB)
        x ^= x >> _U64(31)
    return x


def _word_bytes(buf: np.ndarray) -> np.ndarray:
    """Mask of the bytes that belong to words."""
    word = (((buf | 0x20) >= 97) & ((buf | 0x20) <= 122)) | ((buf >= 48) & (buf <= 57)) | (buf >= 0x80)
    # Non-ASCII punctuation: C2 80-BF (Latin-1 symbols, no-break space), E2 80/81 xx (quotes,
    # dashes, ellipsis) and E3 80 xx (CJK full stops and commas).
    lead2 = np.flatnonzero(buf[:-1] == 0xC2)
    word[lead2] = False
    word[lead2 + 1] = False
    second = buf[1:-1]
    lead3 = np.flatnonzero(
        ((buf[:-2] == 0xE2) & ((second == 0x80) | (second == 0x81))) | ((buf[:-2] == 0xE3) & (second == 0x80))
    )
    for k in range(3):
        word[lead3 + k] = False
    return word


def word_hashes_many(texts: list[str]) -> list[np.ndarray]:
    """The word hashes of each text (uint64 arrays), computed in one pass over all of them."""
    if not texts:
        return []
    encoded = [t.encode("utf-8", errors="surrogatepass") for t in texts]
    buf = np.frombuffer(b"\0".join(encoded), dtype=np.uint8)
    if len(buf) == 0:
        return [np.zeros(0, dtype=_U64) for _ in texts]
    word = _word_bytes(buf)
    edges = np.diff(word.astype(np.int8), prepend=np.int8(0), append=np.int8(0))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1) - 1  # inclusive
    lowered = np.where((buf >= 65) & (buf <= 90), buf | 0x20, buf).astype(_U64)
    with np.errstate(over="ignore"):
        prefix = np.zeros(len(buf) + 1, dtype=_U64)
        np.cumsum(lowered * _power_table("inv", _BASE_INV, len(buf)), out=prefix[1:])
        # sum of b_t * BASE**(end - t) over the word = BASE**end * (prefix[end+1] - prefix[start])
        hashes = _mix((prefix[ends + 1] - prefix[starts]) * _power_table("base", _BASE, len(buf))[ends])
    # Documents are separated by one NUL byte, never a word byte: split the words by start offset.
    bounds = np.cumsum([len(e) + 1 for e in encoded])[:-1]
    return np.split(hashes, np.searchsorted(starts, bounds))


def word_hashes(text: str) -> np.ndarray:
    return word_hashes_many([text])[0]


def ngram_hashes(hashes: np.ndarray, n: int) -> np.ndarray:
    """One 64-bit hash per word n-gram; a text shorter than n gives one hash for all its words."""
    if n > MAX_NGRAM:
        raise ValueError(f"n-grams up to {MAX_NGRAM} words are supported, not {n}")
    if len(hashes) == 0:
        return hashes
    n = min(n, len(hashes))
    count = len(hashes) - n + 1
    with np.errstate(over="ignore"):
        out = hashes[:count] * _POSITION_MULT[0]
        for j in range(1, n):
            out ^= hashes[j : j + count] * _POSITION_MULT[j]
    return finish_ngrams(out)


def finish_ngrams(accumulated: np.ndarray) -> np.ndarray:
    return accumulated ^ (accumulated >> _U64(29))


def ngram_accumulators(hashes: np.ndarray, lengths: list[int]):
    """Yields (k, unfinished k-gram hashes at every position) for k = 1, 2, ... max(lengths), each
    from the previous one with one multiply-xor; `finish_ngrams` turns them into `ngram_hashes`
    values. Position i holds the k-gram starting at word i (positions near the end are cut)."""
    with np.errstate(over="ignore"):
        acc = hashes * _POSITION_MULT[0]
        for k in range(1, min(max(lengths), len(hashes)) + 1):
            if k > 1:
                acc = acc[: len(hashes) - k + 1] ^ (hashes[k - 1 :] * _POSITION_MULT[k - 1])
            yield k, acc


def words(text: str) -> list[str]:
    """The words of a text as the hashing sees them (for counting and display)."""
    data = text.encode("utf-8", errors="surrogatepass")
    buf = np.frombuffer(data, dtype=np.uint8)
    if len(buf) == 0:
        return []
    edges = np.diff(_word_bytes(buf).astype(np.int8), prepend=np.int8(0), append=np.int8(0))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return [
        data[s:e].decode("utf-8", errors="replace").lower() for s, e in zip(starts.tolist(), ends.tolist())
    ]
