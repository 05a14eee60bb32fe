"""Deduplication at corpus scale, as stages with files between them (datatrove's MinHash design).

  scan (per shard)        `BucketWriter`: per document, one row per band key and one for the exact
                          hash, (key, order, rank, row), buffered and written in runs sorted by key
                          (`dedup.partition_rows` rows each, with an index of where each 16-bit key
                          prefix starts); the signatures go to `sigs/<rank>.u32`
  plan (driver)           `plan_partitions`: the rows the scan wrote, counted from the file sizes,
                          give the number of pair tasks, each a range of key prefixes holding
                          about `partition_rows` rows
  pairs (per partition)   `FindPairs`: every row of a key is in one key range, so each task reads
                          its range from every run (a slice, found in the run's index), finds its
                          candidate pairs (head of bucket, member), verifies near pairs on the two
                          signatures (read by row from the shards' files), then on the two pages'
                          content: their word n-grams once the sample's boilerplate lines are out
                          (templated pages, man pages say, share option sections and footers that
                          make distinct pages agree on most MinHash values); writes
                          `pairs/<partition>.bin`
  resolve (driver)        `resolve`: connected components over the pairs, the smallest order key
                          of a cluster kept, one removal file per shard for the finish stage

A scan task holds one run being filled, a pair task one key range: both about `partition_rows`
rows of 24 bytes plus sort and pair temporaries several times that, however large the corpus; the
driver holds the verified pairs only. The decisions depend on the (key, order) rows alone, so not
on the shard plan, the runs, nor the number of partitions.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Iterator

import numpy as np
from datatrove.pipeline.base import PipelineStep

from infir.curate.config import DedupConfig
from infir.curate.workfolder import WorkFolder
from infir.curate.dedup.minhash import (
    BUCKET_DTYPE,
    PAIR_DTYPE,
    band_keys,
    components,
    content_jaccard,
    content_shingles,
    head_pairs,
)

REASONS = ("exact_duplicate", "near_duplicate")
KINDS = ("exact", "buckets")
PREFIX_BITS = 16  # a run's index has one entry per key prefix of this many bits: the finest key range
_PREFIX_SHIFT = np.uint64(64 - PREFIX_BITS)


class BucketWriter:
    """Streams one shard's dedup rows to sorted runs (`.tmp` until `close`, so a killed task
    leaves nothing a later stage would read)."""

    def __init__(self, work: Path, cfg: DedupConfig, rank: int, num_perm: int):
        self.work, self.cfg, self.rank, self.num_perm = Path(work), cfg, rank, num_perm
        self.buffers: dict[str, list[np.ndarray]] = {kind: [] for kind in KINDS}
        self.buffered = dict.fromkeys(KINDS, 0)
        self.runs = dict.fromkeys(KINDS, 0)
        self.written: list[Path] = []  # temporary files, renamed at close
        (self.work / "sigs").mkdir(parents=True, exist_ok=True)
        self.sigs_path = self.work / "sigs" / f"{rank:05d}.u32"
        self.sigs = open(self._tmp(self.sigs_path), "wb")
        self.rows = 0

    @staticmethod
    def _tmp(path: Path) -> Path:
        return path.with_name(path.name + ".tmp")

    def _append(self, kind: str, records: np.ndarray) -> None:
        while len(records):
            room = self.cfg.partition_rows - self.buffered[kind]
            self.buffers[kind].append(records[:room])
            self.buffered[kind] += len(self.buffers[kind][-1])
            records = records[room:]
            if self.buffered[kind] >= self.cfg.partition_rows:
                self._flush(kind)

    def _flush(self, kind: str) -> None:
        if not self.buffered[kind]:
            return
        rows = np.concatenate(self.buffers[kind])
        self.buffers[kind], self.buffered[kind] = [], 0
        folder = self.work / kind
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{self.rank:05d}-{self.runs[kind]:05d}.bin"
        self.runs[kind] += 1
        self.written += write_run(path, rows, "key", suffix=".tmp")

    def add(self, exact: np.ndarray, sigs: np.ndarray, orders: np.ndarray) -> None:
        n = len(orders)
        rows = np.arange(self.rows, self.rows + n, dtype=np.uint32)
        self.rows += n
        sigs.astype(np.uint32).tofile(self.sigs)
        if self.cfg.exact and n:
            rec = np.empty(n, dtype=BUCKET_DTYPE)
            rec["key"], rec["order"], rec["rank"], rec["row"] = exact, orders, self.rank, rows
            self._append("exact", rec)
        if self.cfg.minhash and n:
            keys = band_keys(sigs, self.cfg.rows)
            bands = keys.shape[1]
            rec = np.empty(n * bands, dtype=BUCKET_DTYPE)
            rec["key"] = keys.ravel()
            rec["order"] = np.repeat(orders, bands)
            rec["rank"] = self.rank
            rec["row"] = np.repeat(rows, bands)
            self._append("buckets", rec)

    def close(self) -> None:
        for kind in KINDS:
            self._flush(kind)
        self.sigs.close()
        Path(self.sigs.name).replace(self.sigs.name[: -len(".tmp")])
        for path in self.written:
            self._tmp(path).replace(path)


def plan_partitions(work: WorkFolder, cfg: DedupConfig) -> int:
    """The number of pair tasks: the rows of the larger kind (counted from the runs' sizes) over
    `partition_rows`. Key ranges cannot be finer than one key prefix."""
    rows = max(sum(work.sizes(kind, ".bin").values()) // BUCKET_DTYPE.itemsize for kind in KINDS)
    return max(1, min(1 << PREFIX_BITS, math.ceil(rows / cfg.partition_rows)))


def prefix_range(part: int, parts: int) -> tuple[int, int]:
    """The key prefixes [lo, hi) of partition `part` of `parts`."""
    return (part << PREFIX_BITS) // parts, ((part + 1) << PREFIX_BITS) // parts


def write_run(path: Path, rows: np.ndarray, key: str, suffix: str = "") -> list[Path]:
    """Writes `rows` sorted by their uint64 field `key` to `path` (+ `suffix`), and beside it
    (`.idx`) where each key prefix of `PREFIX_BITS` bits starts; returns the two paths."""
    rows = rows[np.argsort(rows[key], kind="stable")]
    starts = np.searchsorted(rows[key] >> _PREFIX_SHIFT, np.arange((1 << PREFIX_BITS) + 1, dtype=np.uint64))
    written = [path, path.with_suffix(".idx")]
    for target, data in zip(written, (rows, starts.astype(np.uint64))):
        data.tofile(target.with_name(target.name + suffix))
    return written


def read_range(work: WorkFolder, runs: list[str], dtype: np.dtype, part: int, parts: int) -> np.ndarray:
    """The rows of the runs `runs` (files of the work folder) whose key prefix is in range `part`
    of `parts`: one slice per run, read where it lies."""
    lo, hi = prefix_range(part, parts)
    chunks = []
    for run in runs:
        bounds = work.read_range(run[: -len(".bin")] + ".idx", np.uint64, lo, hi - lo + 1)
        start, end = bounds[[0, -1]].tolist()
        if end > start:
            chunks.append(work.read_range(run, dtype, start, end - start))
    return np.concatenate(chunks) if chunks else np.zeros(0, dtype=dtype)


def _read_partition(work: WorkFolder, kind: str, part: int, parts: int) -> np.ndarray:
    return read_range(
        work, [f"{kind}/{name}" for name in sorted(work.sizes(kind, ".bin"))], BUCKET_DTYPE, part, parts
    )


def _pairs(rows: np.ndarray, heads: np.ndarray, members: np.ndarray, exact: bool) -> np.ndarray:
    out = np.empty(len(heads), dtype=PAIR_DTYPE)
    a, b = rows[heads], rows[members]
    out["a_order"], out["a_rank"], out["a_row"] = a["order"], a["rank"], a["row"]
    out["b_order"], out["b_rank"], out["b_row"] = b["order"], b["rank"], b["row"]
    out["exact"] = exact
    return out


class SignatureReader:
    """Rows of the shards' signature files, read where they lie (memory maps), a few at a time."""

    def __init__(self, work: WorkFolder, num_perm: int):
        self.work, self.num_perm = work, num_perm
        self._maps: dict[int, np.memmap] = {}

    def rows(self, ranks: np.ndarray, rows: np.ndarray) -> np.ndarray:
        out = np.empty((len(ranks), self.num_perm), dtype=np.uint32)
        for rank in np.unique(ranks).tolist():
            sel = np.flatnonzero(ranks == rank)
            m = self._maps.get(rank)
            if m is None:
                m = self._maps[rank] = np.memmap(
                    self.work.fetch(f"sigs/{rank:05d}.u32"), dtype=np.uint32, mode="r"
                ).reshape(-1, self.num_perm)
            out[sel] = m[rows[sel]]
        return out

    def release(self) -> None:
        """Drops the pages read so far from this process's resident memory: random rows touch
        most pages of a shard's file, which would otherwise count against the task until it ends."""
        import mmap

        for m in self._maps.values():
            if hasattr(m, "_mmap") and hasattr(mmap, "MADV_DONTNEED"):
                m._mmap.madvise(mmap.MADV_DONTNEED)


def verify_near(pairs: np.ndarray, sigs: SignatureReader, threshold: float, chunk: int = 8192) -> np.ndarray:
    """The candidate pairs whose signatures agree on at least `threshold` of their values. Each
    row read can bring a page of its shard's file into this process (4 KB for 448 bytes), held
    until the chunk's pages are released: `chunk` pairs touch up to 2 x chunk pages."""
    keep = np.zeros(len(pairs), dtype=bool)
    for start in range(0, len(pairs), chunk):
        p = pairs[start : start + chunk]
        a = sigs.rows(p["a_rank"], p["a_row"])
        b = sigs.rows(p["b_rank"], p["b_row"])
        keep[start : start + chunk] = (a == b).mean(axis=1) >= threshold
        sigs.release()
    return pairs[keep]


class ContentReader:
    """Content shingles of single scanned documents, read by row where they lie (`scan/<rank>.jsonl`
    and its offsets), boilerplate lines left out."""

    def __init__(self, work: WorkFolder, boilerplate: np.ndarray, ngram: int):
        self.work, self.boilerplate, self.ngram = work, boilerplate, ngram
        self._files: dict[int, tuple] = {}

    def shingles(self, rank: int, row: int) -> np.ndarray:
        import orjson

        if rank not in self._files:
            self._files[rank] = (
                np.memmap(self.work.fetch(f"scan/{rank:05d}.off"), dtype=np.uint64, mode="r"),
                open(self.work.fetch(f"scan/{rank:05d}.jsonl"), "rb"),
            )
        offsets, f = self._files[rank]
        f.seek(int(offsets[row]))
        return content_shingles(orjson.loads(f.readline())["text"], self.boilerplate, self.ngram)

    def close(self) -> None:
        for _, f in self._files.values():
            f.close()


def verify_content(pairs: np.ndarray, reader: ContentReader, threshold: float) -> np.ndarray:
    """The pairs whose content shingle sets (boilerplate lines out) have Jaccard >= `threshold`.
    Pairs are taken head by head: a head's shingles are read once for all its members, and only
    one head is held at a time, so memory does not grow with the partition."""
    if not len(pairs):
        return pairs
    pairs = pairs[np.argsort(pairs["a_order"], kind="stable")]
    keep = np.zeros(len(pairs), dtype=bool)
    head, head_shingles = None, None
    for i, p in enumerate(pairs):
        if p["a_order"] != head:
            head, head_shingles = p["a_order"], reader.shingles(int(p["a_rank"]), int(p["a_row"]))
        keep[i] = (
            content_jaccard(head_shingles, reader.shingles(int(p["b_rank"]), int(p["b_row"]))) >= threshold
        )
    return pairs[keep]


class FindPairs(PipelineStep):
    """Pair task `rank` = key range `rank` of `parts`: exact pairs, verified near pairs."""

    name = "👯 dedup pairs"
    type = "👯 - DEDUP"

    def __init__(self, work: WorkFolder, cfg: DedupConfig, num_perm: int, parts: int):
        super().__init__()
        self.work, self.cfg, self.num_perm, self.parts = work, cfg, num_perm, parts

    def run(self, data=None, rank: int = 0, world_size: int = 1) -> Iterator:
        t0 = time.perf_counter()
        work = self.work
        found = []
        exact = _read_partition(work, "exact", rank, self.parts)
        if len(exact):
            h, m = head_pairs(exact["key"], exact["order"])
            found.append(_pairs(exact, h, m, True))
        del exact
        buckets = _read_partition(work, "buckets", rank, self.parts)
        candidates = signature_pairs = 0
        if len(buckets):
            h, m = head_pairs(buckets["key"], buckets["order"])
            near = _pairs(buckets, h, m, False)
            del buckets, h, m
            # a pair sharing several bands is verified once (sorted by head, as `verify_content` reads them)
            near = near[np.lexsort((near["b_order"], near["a_order"]))]
            a, b = near["a_order"], near["b_order"]
            near = near[np.r_[True, (a[1:] != a[:-1]) | (b[1:] != b[:-1])]] if len(near) else near
            del a, b
            candidates = len(near)
            near = verify_near(near, SignatureReader(work, self.num_perm), self.cfg.verify_threshold)
            signature_pairs = len(near)
            if self.cfg.content_threshold is not None and len(near):
                boilerplate = np.fromfile(work.fetch("boilerplate.u64"), dtype=np.uint64)
                reader = ContentReader(work, boilerplate, self.cfg.ngram)
                try:
                    near = verify_content(near, reader, self.cfg.content_threshold)
                finally:
                    reader.close()
            found.append(near)
        pairs = np.concatenate(found) if found else np.zeros(0, dtype=PAIR_DTYPE)
        out = work / f"pairs/{rank:05d}.bin"
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".tmp")
        pairs.tofile(tmp)
        tmp.replace(out)
        work.publish(out)
        work.write_text(
            f"pairs/{rank:05d}.json",
            json.dumps(
                {
                    "candidates": candidates,
                    "signature_pairs": signature_pairs,
                    "pairs": int(len(pairs)),
                    "seconds": time.perf_counter() - t0,
                }
            ),
        )
        return iter(())


def _doc_ids(work: WorkFolder, ranks: np.ndarray, rows: np.ndarray) -> list[str]:
    """Ids of a few documents, read by row from each shard's id file and its offsets."""
    out: list[str] = [""] * len(ranks)
    for rank in np.unique(ranks).tolist():
        sel = np.flatnonzero(ranks == rank)
        offsets = np.memmap(work.fetch(f"ids/{rank:05d}.off"), dtype=np.uint64, mode="r")
        with open(work.fetch(f"ids/{rank:05d}.jsonl"), "rb") as f:
            for i in sel[np.argsort(rows[sel])].tolist():
                f.seek(int(offsets[rows[i]]))
                out[i] = json.loads(f.readline())
    return out


def resolve(work: WorkFolder, n_shards: int, partitions: int) -> dict:
    """Clusters from the verified pairs; writes `decisions/dedup/<rank>.json`: rows removed, the id
    of the document kept in their cluster and the reason. Returns a report."""
    t0 = time.perf_counter()
    files = [work.fetch(f"pairs/{p:05d}.bin", missing_ok=True) for p in range(partitions)]
    pairs = np.concatenate(
        [np.fromfile(f, dtype=PAIR_DTYPE) for f in files if f is not None] or [np.zeros(0, dtype=PAIR_DTYPE)]
    )
    stats = [
        json.loads(text)
        for text in (work.read_text(f"pairs/{p:05d}.json") for p in range(partitions))
        if text is not None
    ]
    orders = np.concatenate([pairs["a_order"], pairs["b_order"]])
    ranks = np.concatenate([pairs["a_rank"], pairs["b_rank"]])
    rows = np.concatenate([pairs["a_row"], pairs["b_row"]])
    nodes, first, index = np.unique(orders, return_index=True, return_inverse=True)
    labels = components(index[: len(pairs)], index[len(pairs) :], len(nodes))
    removed = np.flatnonzero(labels != np.arange(len(nodes)))
    exact_removed = np.zeros(len(nodes), dtype=bool)
    exact_removed[index[len(pairs) :][pairs["exact"].astype(bool)]] = True
    keepers = labels[removed]
    unique_keepers, keeper_slot = np.unique(keepers, return_inverse=True)
    keeper_ids = _doc_ids(work, ranks[first[unique_keepers]], rows[first[unique_keepers]])
    out = work / "decisions" / "dedup"
    out.mkdir(parents=True, exist_ok=True)
    node_rank, node_row = ranks[first], rows[first]
    reason = exact_removed[removed].astype(np.int8)  # 1: exact
    for rank in range(n_shards):
        sel = np.flatnonzero(node_rank[removed] == rank)
        sel = sel[np.argsort(node_row[removed[sel]])]
        payload = {
            "rows": node_row[removed[sel]].tolist(),
            "keeper": [keeper_ids[k] for k in keeper_slot[sel].tolist()],
            "reason": [REASONS[0] if r else REASONS[1] for r in reason[sel].tolist()],
        }
        (out / f"{rank:05d}.json").write_text(json.dumps(payload))
        work.publish(out / f"{rank:05d}.json")
    return {
        "pairs": int(len(pairs)),
        "exact_pairs": int(pairs["exact"].sum()),
        "candidate_near_pairs": sum(s["candidates"] for s in stats),
        "signature_verified_near_pairs": sum(s["signature_pairs"] for s in stats),
        "clusters": int(len(unique_keepers)),
        "removed": int(len(removed)),
        "pair_seconds": sum(s["seconds"] for s in stats),
        "resolve_seconds": time.perf_counter() - t0,
    }
