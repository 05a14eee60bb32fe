"""The dedup building blocks: clusters from pairs, key ranges that split the runs, and decisions that
do not depend on the number of ranges."""

from __future__ import annotations

import gzip
import json
import random

import numpy as np

from infir.curate.config import CurateConfig, DedupConfig, SourceConfig
from infir.curate.dedup.minhash import components
from infir.curate.dedup.stages import (
    PREFIX_BITS,
    BucketWriter,
    _read_partition,
    plan_partitions,
    prefix_range,
)
from infir.curate.workfolder import WorkFolder
from infir.curate.pipeline import run_curate


def _union_find(edges: list[tuple[int, int]], n: int) -> list[int]:
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    for a, b in edges:
        ra, rb = find(a), find(b)
        parent[max(ra, rb)] = min(ra, rb)
    return [find(i) for i in range(n)]


def test_components_label_each_node_with_the_smallest_of_its_cluster():
    rng = random.Random(3)
    for n, m in [(1, 0), (10, 3), (200, 150), (500, 480), (1000, 50)]:
        edges = [(rng.randrange(n), rng.randrange(n)) for _ in range(m)]
        a = np.array([e[0] for e in edges], dtype=np.int64)
        b = np.array([e[1] for e in edges], dtype=np.int64)
        assert components(a, b, n).tolist() == _union_find(edges, n)
    # a long chain, given in the worst order for label propagation
    n = 300
    a, b = np.arange(n - 1, 0, -1), np.arange(n - 2, -1, -1)
    assert components(a, b, n).tolist() == [0] * n


def test_kept_set_does_not_depend_on_the_bucket_partitions(tmp_path):
    rng = random.Random(1)
    words = [f"w{i}" for i in range(3000)]
    docs = [" ".join(rng.choice(words) for _ in range(120)) for _ in range(150)]
    records = [{"id": f"d{i}", "text": t} for i, t in enumerate(docs)]
    for k in range(0, 150, 5):  # near copies (one word in sixty changed) and exact copies
        near = docs[k].split()
        near[rng.randrange(len(near))] = "changed"
        records.insert(rng.randrange(len(records)), {"id": f"near{k}", "text": " ".join(near)})
        records.insert(rng.randrange(len(records)), {"id": f"exact{k}", "text": docs[k]})
    path = tmp_path / "in.jsonl"  # plain JSONL: split by byte ranges into 3 shards
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    kept, parts = [], []
    # one run per shard and one key range; several sorted runs per shard and many key ranges
    for rows in (10**6, 300):
        cfg = CurateConfig(sources=[SourceConfig(type="jsonl", paths=[str(path)])], workers=2, tasks=3)
        for section in (cfg.langid, cfg.filters, cfg.recall, cfg.quality, cfg.decontam):
            section.enabled = False
        cfg.dedup.partition_rows = rows
        summary = run_curate(cfg, tmp_path / f"p{rows}")
        assert summary["select"]["dedup"]["removed"] == 60
        parts.append(summary["select"]["dedup"]["partitions"])
        runs = len(list((tmp_path / f"p{rows}/_work/buckets").glob("*.bin")))
        assert runs == 3 if rows == 10**6 else runs >= 3 * 4  # about 1400 rows per shard
        kept.append(
            sorted(
                json.loads(line)["id"]
                for p in (tmp_path / f"p{rows}/kept").glob("*.gz")
                for line in gzip.open(p, "rt")
            )
        )
    # 210 documents x 20 bands: 1 key range, then ceil(4200 / 300)
    assert parts == [1, 14]
    assert kept[0] == kept[1]


def test_key_ranges_split_the_runs_without_loss_or_overlap(tmp_path):
    """Every row the scan wrote is read by exactly one pair task, whatever the number of tasks,
    and a task's rows are the ones whose keys fall in its range."""
    cfg = DedupConfig(partition_rows=1000)
    rng = np.random.default_rng(0)
    for rank in range(2):
        writer = BucketWriter(tmp_path, cfg, rank, num_perm=cfg.bands * cfg.rows)
        for _ in range(7):  # batches that fill several runs
            n = 90
            sigs = rng.integers(0, 2**32, (n, cfg.bands * cfg.rows), dtype=np.uint64).astype(np.uint32)
            writer.add(
                rng.integers(0, 2**63, n, dtype=np.uint64), sigs, rng.integers(0, 2**40, n, dtype=np.uint64)
            )
        writer.close()
    assert not list(tmp_path.rglob("*.tmp"))
    total = 2 * 7 * 90 * cfg.bands
    work = WorkFolder(str(tmp_path))
    assert plan_partitions(work, cfg) == -(-total // 1000)
    everything = np.sort(_read_partition(work, "buckets", 0, 1), order=["key", "order"])
    assert len(everything) == total
    for parts in (2, 5, 16):
        pieces = [_read_partition(work, "buckets", p, parts) for p in range(parts)]
        for p, piece in enumerate(pieces):
            lo, hi = prefix_range(p, parts)
            prefixes = piece["key"] >> np.uint64(64 - PREFIX_BITS)
            assert ((prefixes >= lo) & (prefixes < hi)).all()
        assert np.array_equal(np.sort(np.concatenate(pieces), order=["key", "order"]), everything)


def test_a_partition_without_candidate_pairs(tmp_path):
    """Distinct documents only: every bucket holds one document, so no partition has a pair."""
    rng = random.Random(2)
    path = tmp_path / "in.jsonl"
    path.write_text(
        "".join(
            json.dumps({"id": f"d{i}", "text": " ".join(f"w{rng.randrange(10**6)}" for _ in range(80))})
            + "\n"
            for i in range(20)
        )
    )
    cfg = CurateConfig(sources=[SourceConfig(type="jsonl", paths=[str(path)])], workers=2, tasks=2)
    for section in (cfg.langid, cfg.filters, cfg.recall, cfg.quality, cfg.decontam):
        section.enabled = False
    cfg.dedup.partition_rows = 100  # 5 key ranges
    summary = run_curate(cfg, tmp_path / "out")
    assert summary["totals"]["docs_kept"] == 20 and summary["select"]["dedup"]["pairs"] == 0
