"""Exact and MinHash-LSH fuzzy deduplication, one document kept per cluster.

Signatures are computed in the parallel scan (`Featurize` step), clustering once on the driver:
- exact: a 64-bit hash of the whitespace-normalised text; the first copy is kept;
- fuzzy: `bands` x `rows` MinHash values over word n-grams; documents sharing a band become
  candidates, and a candidate pair is merged only when its signatures agree on at least
  `verify_threshold` of all values (an estimate of Jaccard similarity), which removes the chance
  collisions of banding. Union-find joins the pairs into clusters; the earliest document (in
  shard order, which is input order) is kept and the others point to it.

All of it is numpy: one (shingles x hashes) product for the shingles of many documents at once,
a sort per band for buckets.
"""

from __future__ import annotations

import numpy as np
import xxhash

from infir.curate.config import DedupConfig
from infir.curate.hashing import ngram_hashes, word_hashes

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
                    np.minimum(sig[i], self._permuted(s[start:start + self._ROWS]).min(axis=0), out=sig[i])
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
        block = self._block[:len(shingles)]
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


