"""Exact and MinHash-LSH fuzzy deduplication, one document kept per cluster.

Signatures are computed in the parallel scan (`Featurize` step), clustering once on the driver:
- exact: a 64-bit hash of the whitespace-normalised text; the first copy is kept;
- fuzzy: `bands` x `rows` MinHash values over word n-grams; documents sharing a band become
  candidates, and a candidate pair is merged only when its signatures agree on at least
  `verify_threshold` of all values (an estimate of Jaccard similarity), which removes the chance
  collisions of banding. Union-find joins the pairs into clusters; the earliest document (in
  shard order, which is input order) is kept and the others point to it.

All of it is numpy: one (shingles x hashes) product per document for signatures, a sort per band
for buckets.
"""

from __future__ import annotations

import numpy as np
import xxhash

from infir.curate.config import DedupConfig
from infir.curate.hashing import ngram_hashes, word_hashes

_PRIME_SHIFT = np.uint64(32)


class MinHasher:
    def __init__(self, cfg: DedupConfig):
        self.cfg = cfg
        self.num_perm = cfg.bands * cfg.rows
        rng = np.random.default_rng(cfg.seed)
        self.a = (rng.integers(1, 2**63, self.num_perm, dtype=np.uint64) << np.uint64(1)) | np.uint64(1)
        self.b = rng.integers(0, 2**63, self.num_perm, dtype=np.uint64)

    def signature(self, text: str, words: np.ndarray | None = None) -> np.ndarray:
        words = word_hashes(text) if words is None else words
        shingles = np.unique(ngram_hashes(words, self.cfg.ngram))
        if len(shingles) == 0:
            return np.full(self.num_perm, np.iinfo(np.uint32).max, dtype=np.uint32)
        sig = np.full(self.num_perm, np.iinfo(np.uint64).max, dtype=np.uint64)
        with np.errstate(over="ignore"):
            for start in range(0, len(shingles), 4096):  # bounded memory for very long documents
                chunk = shingles[start:start + 4096, None]
                np.minimum(sig, (chunk * self.a + self.b).min(axis=0), out=sig)
        return (sig >> _PRIME_SHIFT).astype(np.uint32)


def exact_hash(text: str) -> int:
    return xxhash.xxh3_64_intdigest(" ".join(text.split()).encode())


class _UnionFind:
    def __init__(self, n: int):
        self.parent = np.arange(n)

    def find(self, i: int) -> int:
        parent = self.parent
        root = i
        while parent[root] != root:
            root = parent[root]
        while parent[i] != root:
            parent[i], i = root, parent[i]
        return root

    def union(self, i: int, j: int) -> None:
        ri, rj = self.find(i), self.find(j)
        if ri != rj:  # the earlier document stays the root, so it is the one kept
            self.parent[max(ri, rj)] = min(ri, rj)


def _band_keys(sigs: np.ndarray, band: int, rows: int) -> np.ndarray:
    block = sigs[:, band * rows:(band + 1) * rows].astype(np.uint64)
    key = np.zeros(len(sigs), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for r in range(rows):
            key = (key ^ block[:, r]) * np.uint64(0x100000001B3)
    return key


def find_duplicates(exact: np.ndarray, sigs: np.ndarray, cfg: DedupConfig) -> dict[int, tuple[int, str]]:
    """Returns {index of a removed doc: (index of the doc kept in its cluster, reason)}."""
    n = len(exact)
    removed: dict[int, tuple[int, str]] = {}
    if n == 0:
        return removed
    alive = np.ones(n, dtype=bool)
    if cfg.exact:
        _, first = np.unique(exact, return_index=True)
        first_of = {int(exact[i]): int(i) for i in first}
        for i in range(n):
            keeper = first_of[int(exact[i])]
            if keeper != i:
                removed[i] = (keeper, "exact_duplicate")
                alive[i] = False
    if cfg.minhash:
        idx = np.flatnonzero(alive)
        uf = _UnionFind(n)
        for band in range(cfg.bands):
            keys = _band_keys(sigs[idx], band, cfg.rows)
            order = np.argsort(keys, kind="stable")
            sorted_keys = keys[order]
            starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
            sizes = np.diff(np.r_[starts, len(order)])
            for s, size in zip(starts[sizes > 1], sizes[sizes > 1]):
                members = idx[order[s:s + size]]
                head = members[0]
                agree = (sigs[members[1:]] == sigs[head]).mean(axis=1)
                for m in members[1:][agree >= cfg.verify_threshold]:
                    uf.union(int(head), int(m))
        for i in idx:
            root = uf.find(int(i))
            if root != i:
                removed[int(i)] = (root, "near_duplicate")
    return removed


