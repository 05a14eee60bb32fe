"""How `infir curate` scales: the same pipeline on corpora of increasing size. Prints one line per
size, then one JSON line with all figures.

    python benchmarks/curate_scaling.py [--sizes 100000 300000 1000000] [--workers 2] [--out DIR]

A corpus of N documents is built from the reference corpus's clean documents: each document
strings together 5 to 14 paragraphs drawn from documents of one domain (paragraphs of any one page
are a small share of the pool, so two built pages rarely share most of their text, and each keeps
its domain's style; paragraphs repeated across the reference pages, boilerplate, stay common), and
`--dup-rate` of the documents are injected copies of an earlier one, half exact, half near (a few
words changed). Built pages that happen to share most paragraphs are duplicates too: the dedup
figures count them, the duplicate recall does not. Each size runs in a fresh
process, so its peak memory is its own: the driver's peak RSS, and the largest peak RSS of its
children (datatrove workers and the driver's forked training jobs). Besides documents per wall
second, documents per CPU second (driver and children): the machine may be shared. Duplicate
recall is the share of injected pairs of which at most one document is kept.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from curate_common import decontam_setup, read_jsonl, shared_dir  # noqa: E402


def _near(text: str, rng: random.Random) -> str:
    words = text.split(" ")
    for _ in range(max(1, len(words) // 50)):
        i = rng.randrange(len(words))
        words[i] = words[i][::-1]
    return " ".join(words)


def build_corpus(shared: Path, size: int, path: Path, dup_rate: float, seed: int = 0) -> dict[str, str]:
    """Writes `size` documents to `path` (JSONL); returns {copy id: original id}."""
    rng = random.Random(seed)
    labels = {r["id"]: r for r in read_jsonl(shared / "corpus/refcorpus.labels.jsonl.gz")}
    by_domain: dict[str, list[str]] = {}
    for r in read_jsonl(shared / "corpus/refcorpus.jsonl.gz"):
        if labels[r["id"]]["kind"] == "clean":
            by_domain.setdefault(labels[r["id"]]["domain"], []).extend(
                p for p in r["text"].split("\n\n") if p.strip()
            )
    domains = sorted(by_domain)
    weights = [len(by_domain[d]) for d in domains]
    copies: dict[str, str] = {}
    recent: list[tuple[str, str]] = []
    with open(path, "w", encoding="utf-8") as f:
        for i in range(size):
            doc_id = f"s{i:08d}"
            if recent and rng.random() < dup_rate:
                original_id, original = recent[rng.randrange(len(recent))]
                text = original if rng.random() < 0.5 else _near(original, rng)
                copies[doc_id] = original_id
            else:
                pool = by_domain[rng.choices(domains, weights)[0]]
                text = "\n\n".join(rng.choice(pool) for _ in range(rng.randint(5, 14)))
                recent.append((doc_id, text))
                if len(recent) > 2000:
                    recent.pop(rng.randrange(len(recent)))
            f.write(
                json.dumps({"id": doc_id, "text": text, "url": f"https://scaling.example/{i % 997}/{doc_id}"})
                + "\n"
            )
    return copies


def run_one(corpus: Path, out: Path, workers: int, partition_rows: int | None) -> dict:
    """Runs in its own process: the pipeline on one corpus, with this process's memory figures."""
    from infir.curate.config import CurateConfig, SourceConfig
    from infir.curate.pipeline import run_curate

    cfg = CurateConfig(sources=[SourceConfig(type="jsonl", paths=[str(corpus)])], workers=workers)
    if partition_rows:
        cfg.dedup.partition_rows = partition_rows
    cfg.decontam.tasks, cfg.decontam.data_paths, _ = decontam_setup(shared_dir())
    t0 = time.perf_counter()
    summary = run_curate(cfg, out, seed=0)
    wall = time.perf_counter() - t0
    kept = set()
    for p in sorted((out / "kept").glob("*.jsonl.gz")):
        with gzip.open(p, "rt", encoding="utf-8") as f:
            kept.update(json.loads(line)["id"] for line in f)
    (out / "kept_ids.json").write_text(json.dumps(sorted(kept)))
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "wall_seconds": round(wall, 1),
        "docs_read": summary["totals"]["docs_read"],
        # the machine may be shared: CPU seconds (driver and workers) do not count others' load
        "cpu_seconds": round(own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime, 1),
        "docs_kept": summary["totals"]["docs_kept"],
        "stage_seconds": summary["totals"]["stage_seconds"],
        "driver_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "max_child_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
        "dedup": {
            k: v
            for k, v in summary["select"]["dedup"].items()
            if k in ("pairs", "clusters", "removed", "partitions")
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 300_000, 1_000_000])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--partition-rows", type=int, help="dedup.partition_rows (default: the config's)")
    parser.add_argument("--dup-rate", type=float, default=0.02)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--run-one", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run_one:
        print(json.dumps(run_one(args.run_one[0], args.run_one[1], args.workers, args.partition_rows)))
        return
    shared = shared_dir()
    root = args.out or Path(tempfile.mkdtemp(prefix="curate-scaling-"))
    root.mkdir(parents=True, exist_ok=True)
    figures = []
    for size in args.sizes:
        corpus = root / f"corpus-{size}.jsonl"
        copies = build_corpus(shared, size, corpus, args.dup_rate)
        rows = ["--partition-rows", str(args.partition_rows)] if args.partition_rows else []
        proc = subprocess.run(
            [
                sys.executable,
                __file__,
                "--workers",
                str(args.workers),
                *rows,
                "--run-one",
                str(corpus),
                str(root / f"out-{size}"),
            ],
            capture_output=True,
            text=True,
        )
        if proc.returncode:
            raise SystemExit(f"size {size} failed:\n{proc.stderr[-4000:]}")
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        kept = set(json.loads((root / f"out-{size}" / "kept_ids.json").read_text()))
        resolved = [not (c in kept and o in kept) for c, o in copies.items()]
        result.update(
            size=size,
            docs_per_second=round(result["docs_read"] / result["wall_seconds"], 1),
            docs_per_cpu_second=round(result["docs_read"] / result["cpu_seconds"], 1),
            injected_pairs=len(copies),
            dup_recall=round(sum(resolved) / max(len(resolved), 1), 4),
        )
        figures.append(result)
        print(
            f"{size:>9} docs: {result['wall_seconds']:>8.1f}s  {result['docs_per_second']:>8.1f} docs/s  "
            f"{result['docs_per_cpu_second']:>7.1f} docs/CPU-s  "
            f"driver peak {result['driver_peak_rss_mb']:>7.1f} MB  max worker peak "
            f"{result['max_child_peak_rss_mb']:>7.1f} MB  dup recall {result['dup_recall']:.4f} "
            f"({len(copies)} pairs)  {result['dedup']['partitions']} pair tasks",
            flush=True,
        )
    print(
        json.dumps(
            {
                "workers": args.workers,
                "partition_rows": args.partition_rows,
                "dup_rate": args.dup_rate,
                "figures": figures,
            }
        )
    )


if __name__ == "__main__":
    main()
