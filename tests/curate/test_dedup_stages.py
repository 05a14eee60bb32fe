"""The dedup building blocks: clusters from pairs, and decisions that do not depend on partitions."""

from __future__ import annotations

import gzip
import json
import random

import numpy as np

from infir.curate.config import CurateConfig, SourceConfig
from infir.curate.dedup import components
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
    path = tmp_path / "in.jsonl.gz"
    with gzip.open(path, "wt") as f:
        f.writelines(json.dumps(r) + "\n" for r in records)
    kept = []
    for partitions in (1, 5):
        cfg = CurateConfig(sources=[SourceConfig(type="jsonl", paths=[str(path)])], workers=2, tasks=3)
        for section in (cfg.langid, cfg.filters, cfg.recall, cfg.quality, cfg.decontam):
            section.enabled = False
        cfg.dedup.partitions = partitions
        summary = run_curate(cfg, tmp_path / f"p{partitions}")
        assert summary["select"]["dedup"]["removed"] == 60
        kept.append(sorted(json.loads(line)["id"] for p in (tmp_path / f"p{partitions}/kept").glob("*.gz")
                           for line in gzip.open(p, "rt")))
    assert kept[0] == kept[1]


def test_a_partition_without_candidate_pairs(tmp_path):
    """Distinct documents only: every bucket holds one document, so no partition has a pair."""
    rng = random.Random(2)
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps({"id": f"d{i}", "text": " ".join(f"w{rng.randrange(10**6)}" for _ in range(80))})
                            + "\n" for i in range(20)))
    cfg = CurateConfig(sources=[SourceConfig(type="jsonl", paths=[str(path)])], workers=2, tasks=2)
    for section in (cfg.langid, cfg.filters, cfg.recall, cfg.quality, cfg.decontam):
        section.enabled = False
    cfg.dedup.partitions = 3
    summary = run_curate(cfg, tmp_path / "out")
    assert summary["totals"]["docs_kept"] == 20 and summary["select"]["dedup"]["pairs"] == 0
