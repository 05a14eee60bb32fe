"""Exact and MinHash-LSH fuzzy deduplication, one document kept per cluster.

Signatures are computed in the parallel scan (`Featurize` step):
- exact: a 64-bit hash of the whitespace-normalised text; documents sharing it are duplicates;
- fuzzy: `bands` x `rows` MinHash values over word n-grams; documents sharing a band key become
  candidates, and a candidate pair is kept only when its signatures agree on at least
  `verify_threshold` of all values (an estimate of Jaccard similarity), which removes the chance
  collisions of banding.
Pairs join into clusters (connected components); the cluster's document with the smallest order
key (its place in the input, see `shard_steps.order_key`) is kept and the others point to it, so
no shard plan changes which copy survives.

All of it is numpy: one (shingles x hashes) product for the shingles of many documents at once,
a sort for buckets, label propagation for clusters.
"""

from __future__ import annotations

import numpy as np
import xxhash

from infir.curate.config import DedupConfig
from infir.curate.dedup.hashing import ngram_hashes, word_hashes

_PRIME_SHIFT = np.uint64(32)


class MinHasher:
    _ROWS = 4096  # shingles hashed at once, into one reused (rows x hashes) block: fresh large
    # temporaries cost more in page faults than the arithmetic

    def __init__(self, cfg: DedupConfig):
        self.cfg = cfg
        self.num_perm = cfg.bands * cfg.rows
        rng = np.random.default_rng(cfg.seed)
        self.a = (rng.integers(1, 2**63, self.num_perm, dtype=np.uint64) << np.uint64(1)) | np.uint64(1)
        self.b = rng.integers(0, 2**63, self.num_perm, dtype=np.uint64)
        self._block = np.empty((self._ROWS, self.num_perm), dtype=np.uint64)

    def signature(self, text: str, words: np.ndarray | None = None) -> np.ndarray:
        return self.signatures([word_hashes(text) if words is None else words])[0]

    def signatures(self, words_of_docs: list[np.ndarray]) -> np.ndarray:
        """(docs x num_perm) uint32 signatures: per permutation h -> a*h + b (mod 2**64), the minimum
        over a document's shingles, top 32 bits. Shingles of many documents go through one product,
        and `minimum.reduceat` splits the minima by document. A repeated shingle cannot change a
        minimum, so shingles are not made unique first (a sort that costs more than the repeats)."""
        shingles = [ngram_hashes(w, self.cfg.ngram) for w in words_of_docs]
        sig = np.full((len(shingles), self.num_perm), np.iinfo(np.uint64).max, dtype=np.uint64)
        group: list[int] = []
        rows = 0
        for i, s in enumerate(shingles):
            if len(s) > self._ROWS:  # one long document: its own blocks
                for start in range(0, len(s), self._ROWS):
                    np.minimum(sig[i], self._permuted(s[start : start + self._ROWS]).min(axis=0), out=sig[i])
                continue
            if rows + len(s) > self._ROWS:
                self._fill(sig, group, shingles)
                group, rows = [], 0
            if len(s):
                group.append(i)
                rows += len(s)
        self._fill(sig, group, shingles)
        return (sig >> _PRIME_SHIFT).astype(np.uint32)

    def _permuted(self, shingles: np.ndarray) -> np.ndarray:
        block = self._block[: len(shingles)]
        with np.errstate(over="ignore"):
            np.multiply(shingles[:, None], self.a, out=block)
            np.add(block, self.b, out=block)
        return block

    def _fill(self, sig: np.ndarray, group: list[int], shingles: list[np.ndarray]) -> None:
        if not group:
            return
        block = self._permuted(np.concatenate([shingles[i] for i in group]))
        starts = np.cumsum([0] + [len(shingles[i]) for i in group[:-1]])
        sig[group] = np.minimum.reduceat(block, starts, axis=0)


def exact_hash(text: str) -> int:
    return xxhash.xxh3_64_intdigest(" ".join(text.split()).encode())


# Rows the scan writes and the pair stage reads: a document is (order key, shard rank, row in shard).
BUCKET_DTYPE = np.dtype([("key", "<u8"), ("order", "<u8"), ("rank", "<u4"), ("row", "<u4")])
PAIR_DTYPE = np.dtype(
    [
        ("a_order", "<u8"),
        ("a_rank", "<u4"),
        ("a_row", "<u4"),
        ("b_order", "<u8"),
        ("b_rank", "<u4"),
        ("b_row", "<u4"),
        ("exact", "u1"),
    ]
)


def _mix64(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        x = x ^ (x >> np.uint64(30))
        x = x * np.uint64(0xBF58476D1CE4E5B9)
        x = x ^ (x >> np.uint64(27))
        x = x * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def band_keys(sigs: np.ndarray, rows: int) -> np.ndarray:
    """(docs x bands) bucket keys; the band number is mixed in, so buckets of all bands share one
    key space and each key range of the pair stage holds a share of every band."""
    n, num_perm = sigs.shape
    bands = num_perm // rows
    block = sigs[:, : bands * rows].astype(np.uint64).reshape(n, bands, rows)
    key = np.broadcast_to(
        np.arange(bands, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15), (n, bands)
    ).copy()
    with np.errstate(over="ignore"):
        for r in range(rows):
            key = (key ^ block[:, :, r]) * np.uint64(0x100000001B3)
    return _mix64(key)


def head_pairs(keys: np.ndarray, orders: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Candidate pairs of documents sharing a key, as positions (head, member): each bucket's
    member with the smallest order key is its head, every other member is paired with it. Depends
    only on the (key, order) rows, never on the order they arrive in."""
    if len(keys) < 2:
        return np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.intp)
    by = np.lexsort((orders, keys))
    sorted_keys = keys[by]
    first = np.r_[True, sorted_keys[1:] != sorted_keys[:-1]]
    head_of = np.flatnonzero(first)[np.cumsum(first) - 1]
    members = np.flatnonzero(~first)
    return by[head_of[members]], by[members]


def components(a: np.ndarray, b: np.ndarray, n: int) -> np.ndarray:
    """Connected components of the graph on nodes 0..n-1 with edges (a[i], b[i]): the label of a
    node is the smallest node of its component (roots hooked to the smaller root, then pointer
    jumping, until every edge joins equal labels). Memory is that of the edges, not of a corpus."""
    labels = np.arange(n, dtype=np.int64)
    while len(a):
        la, lb = labels[a], labels[b]
        if np.array_equal(la, lb):
            break
        low = np.minimum(la, lb)
        np.minimum.at(labels, la, low)
        np.minimum.at(labels, lb, low)
        while True:
            jumped = labels[labels]
            if np.array_equal(jumped, labels):
                break
            labels = jumped
    return labels


def find_duplicates(exact: np.ndarray, sigs: np.ndarray, cfg: DedupConfig) -> dict[int, tuple[int, str]]:
    """In memory, for small sets (synthesis, tests): {index of a removed doc: (index of the doc
    kept in its cluster, reason)}; the earliest document of a cluster is kept. The corpus pipeline
    takes the same decisions in key ranges (`infir.curate.dedup.stages`)."""
    n = len(exact)
    order = np.arange(n, dtype=np.uint64)
    heads, members, is_exact = [], [], []
    if cfg.exact and n:
        h, m = head_pairs(np.asarray(exact, dtype=np.uint64), order)
        heads.append(h), members.append(m), is_exact.append(np.ones(len(h), dtype=bool))
    if cfg.minhash and n:
        keys = band_keys(sigs, cfg.rows)
        bands = keys.shape[1]
        h, m = head_pairs(keys.ravel(), np.repeat(order, bands))
        h, m = h // bands, m // bands
        agree = (
            (sigs[h] == sigs[m]).mean(axis=1) >= cfg.verify_threshold if len(h) else np.zeros(0, dtype=bool)
        )
        (
            heads.append(h[agree]),
            members.append(m[agree]),
            is_exact.append(np.zeros(int(agree.sum()), dtype=bool)),
        )
    if not heads:
        return {}
    a, b, ex = np.concatenate(heads), np.concatenate(members), np.concatenate(is_exact)
    labels = components(a, b, n)
    exact_removed = set(b[ex].tolist())
    return {
        i: (int(labels[i]), "exact_duplicate" if i in exact_removed else "near_duplicate")
        for i in np.flatnonzero(labels != np.arange(n)).tolist()
    }


def line_hashes(text: str) -> np.ndarray:
    """Hashes of a text's distinct lines, spacing and case normalised (blank lines left out)."""
    seen = {
        xxhash.xxh3_64_intdigest(" ".join(line.split()).lower().encode("utf-8", "surrogatepass"))
        for line in text.split("\n")
        if line.strip()
    }
    return np.fromiter(seen, dtype=np.uint64, count=len(seen))


def boilerplate_lines(per_doc: list[np.ndarray], min_docs: int) -> np.ndarray:
    """Sorted hashes of the lines found in at least `min_docs` of the documents."""
    if not per_doc:
        return np.zeros(0, dtype=np.uint64)
    values, counts = np.unique(np.concatenate(per_doc), return_counts=True)
    return values[counts >= min_docs]


def content_shingles(text: str, boilerplate: np.ndarray, ngram: int) -> np.ndarray:
    """The distinct word n-grams of a text once its boilerplate lines are taken out."""
    lines = [line for line in text.split("\n") if line.strip()]
    if len(boilerplate) and lines:
        hashes = np.array(
            [
                xxhash.xxh3_64_intdigest(" ".join(line.split()).lower().encode("utf-8", "surrogatepass"))
                for line in lines
            ],
            dtype=np.uint64,
        )
        pos = np.searchsorted(boilerplate, hashes).clip(max=len(boilerplate) - 1)
        lines = [line for line, common in zip(lines, boilerplate[pos] == hashes) if not common]
    return np.unique(ngram_hashes(word_hashes("\n".join(lines)), ngram))


def content_jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Jaccard similarity of two sorted shingle sets; two empty sets (pages that are all
    boilerplate) count as the same page."""
    if not len(a) and not len(b):
        return 1.0
    shared = len(np.intersect1d(a, b, assume_unique=True))
    return shared / (len(a) + len(b) - shared)
