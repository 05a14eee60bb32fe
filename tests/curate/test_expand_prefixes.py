"""URL-prefix expansion summed one range of prefix hashes at a time: the same prefixes as a plain
count over all shards, for any number of ranges."""

from __future__ import annotations

import json
import random

import numpy as np

from infir.curate.config import CurateConfig
from infir.curate.dedup.stages import write_run
from infir.curate.select import expand_prefixes
from infir.curate.shard_steps import ApplyRecall, prefix_dtype, prefix_hash
from infir.curate.workfolder import WorkFolder


def _shards(work, rng: random.Random, n_shards: int) -> dict[str, list[int]]:
    """Random per-shard counts for 300 prefixes (pages, recalled math, recalled code); returns the totals."""
    totals: dict[str, list[int]] = {}
    (work / "prefixes").mkdir(parents=True)
    for rank in range(n_shards):
        counts = {}
        for p in rng.sample(range(300), 120):
            pages = rng.randint(1, 6)
            counts[f"site{p}.example/dir"] = [pages, rng.randint(0, pages), rng.randint(0, pages)]
        rows = np.zeros(len(counts), dtype=prefix_dtype(3))
        rows["hash"] = [prefix_hash(p) for p in counts]
        rows["counts"] = list(counts.values())
        write_run(work / "prefixes" / f"{rank:05d}.bin", rows, "hash")
        (work / "prefixes" / f"{rank:05d}.json").write_text(
            json.dumps({"prefixes": len(counts), "seconds": 0.0})
        )
        for p, c in counts.items():
            totals[p] = [a + b for a, b in zip(totals.get(p, [0, 0, 0]), c)]
    return totals


def test_expanded_prefixes_equal_a_plain_count_for_any_number_of_ranges(tmp_path):
    cfg = CurateConfig()
    totals = _shards(tmp_path / "base", random.Random(0), 4)
    r = cfg.recall
    expected = {
        d: {
            p
            for p, c in totals.items()
            if c[0] >= r.expand_min_pages and c[k + 1] >= r.expand_min_fraction * c[0]
        }
        for k, d in enumerate(r.domains)
    }
    assert all(expected.values())  # the draw expands some prefixes of each domain, not all
    assert all(len(v) < len(totals) for v in expected.values())
    for rows, ranges in ((10**6, 1), (50, 10)):  # 4 shards x 120 rows
        work = tmp_path / f"r{rows}"
        _shards(work, random.Random(0), 4)
        cfg.dedup.partition_rows = rows
        report = expand_prefixes(cfg, WorkFolder(str(work)), 4)
        assert report["ranges"] == ranges and report["prefixes"] == len(totals)
        step = ApplyRecall(WorkFolder(str(work)), cfg.recall)
        step.setup(0, 1)
        for d in r.domains:
            assert report["expanded"][d] == len(expected[d])
            assert {p for p in totals if step._expanded_in(d, p)} == expected[d]
            assert not step._expanded_in(d, "elsewhere.example/dir")
