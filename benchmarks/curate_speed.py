"""Speed of `infir curate` against datatrove on the reference corpus, in one run. Prints one JSON line.

    python benchmarks/curate_speed.py [--workers 2] [--keep DIR]

Same corpus, same number of worker processes (fork), one after the other:
  1. datatrove's FineWeb-style filters: GopherRepetitionFilter, GopherQualityFilter,
     C4QualityFilter(filter_no_terminal_punct=False), FineWebQualityFilter (English words split by
     spaCy, datatrove's default), reading the corpus and writing what they keep;
  2. datatrove's 4-stage MinHash dedup (MinhashDedupSignature / Buckets / Cluster / Filter, default
     MinhashConfig) on the whole corpus, as the issue measured it; also on the filters' output
     (the FineWeb order), reported beside it;
  3. the whole `infir curate` pipeline with its default config (language id, domain-aware
     heuristics, recall classifiers trained from scratch, exact + MinHash dedup, quality model
     trained from scratch, decontamination against the registry benchmarks, mixture);
  4. `infir curate` with every step but dedup switched off: the dedup stage alone (read, exact +
     MinHash, write), to compare with datatrove's MinHash. Pair recall of both against the labels.

Wall seconds are the figures; CPU seconds (this process and its children) are reported beside them,
since the machine may be shared. datatrove's JsonlReader gives one worker per file, so the corpus is first split into `workers`
files for it (not timed); infir reads the single file with `workers` readers. datatrove 0.10.1's
MinHash signature step calls xxhash with `str`, which xxhash >= 4 refuses: this script (only)
wraps datatrove's two xxhash functions to encode the text first.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from curate_common import decontam_setup, pair_recall, read_jsonl, shard_corpus, shared_dir  # noqa: E402


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def cpu_seconds() -> float:
    """CPU time of this process and its finished children: on a machine shared with other work,
    a load-independent view of the cost, beside the wall time."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class Timed:
    """Wall and CPU seconds of a block."""

    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), cpu_seconds()
        return self

    def __exit__(self, *exc):
        self.wall, self.cpu = time.perf_counter() - self.wall, cpu_seconds() - self.cpu


def patch_datatrove_xxhash() -> None:
    """datatrove 0.10.1 hashes `str` shingles with xxhash, which xxhash >= 4 rejects."""
    import xxhash
    from datatrove.utils.hashes import xxhash as dt_xxhash

    def encoded(fn):
        return lambda data: fn(data.encode("utf-8") if isinstance(data, str) else data)

    dt_xxhash.xxhash32 = encoded(xxhash.xxh32_intdigest)
    dt_xxhash.xxhash64 = encoded(xxhash.xxh64_intdigest)


def run_executor(pipeline: list, tasks: int, workers: int, logs: Path) -> None:
    from datatrove.executor import LocalPipelineExecutor

    LocalPipelineExecutor(pipeline=pipeline, tasks=tasks, workers=workers, logging_dir=str(logs),
                          start_method="fork").run()


def datatrove_filters(inputs: Path, out: Path, workers: int) -> None:
    from datatrove.pipeline.filters import (C4QualityFilter, FineWebQualityFilter, GopherQualityFilter,
                                            GopherRepetitionFilter)
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter

    run_executor([JsonlReader(str(inputs)), GopherRepetitionFilter(), GopherQualityFilter(),
                  C4QualityFilter(filter_no_terminal_punct=False), FineWebQualityFilter(),
                  JsonlWriter(str(out / "kept"))], workers, workers, out / "logs")


def datatrove_minhash(inputs: Path, out: Path, workers: int) -> dict:
    from datatrove.pipeline.dedup.minhash import (MinhashConfig, MinhashDedupBuckets, MinhashDedupCluster,
                                                  MinhashDedupFilter, MinhashDedupSignature)
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter

    config = MinhashConfig()
    tasks = len(list(inputs.glob("*.jsonl.gz")))
    seconds = {}
    t0 = time.perf_counter()
    run_executor([JsonlReader(str(inputs)), MinhashDedupSignature(str(out / "sigs"), config=config)],
                 tasks, workers, out / "logs/signatures")
    seconds["signatures"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    run_executor([MinhashDedupBuckets(str(out / "sigs"), str(out / "buckets"), config=config)],
                 config.num_buckets, workers, out / "logs/buckets")
    seconds["buckets"] = time.perf_counter() - t1
    t1 = time.perf_counter()
    run_executor([MinhashDedupCluster(str(out / "buckets"), str(out / "remove"), config=config)],
                 1, 1, out / "logs/cluster")
    seconds["cluster"] = time.perf_counter() - t1
    t1 = time.perf_counter()
    run_executor([JsonlReader(str(inputs)), MinhashDedupFilter(str(out / "remove")), JsonlWriter(str(out / "kept"))],
                 tasks, workers, out / "logs/filter")
    seconds["filter"] = time.perf_counter() - t1
    seconds["total"] = time.perf_counter() - t0
    return {k: round(v, 2) for k, v in seconds.items()}


def kept_ids(folder: Path) -> set[str]:
    return {r["id"] for p in folder.glob("*.jsonl.gz") for r in read_jsonl(p)}


def infir_run(corpus: Path, out: Path, workers: int, shared: Path, dedup_only: bool) -> dict:
    from infir.curate.config import CurateConfig, SourceConfig
    from infir.curate.pipeline import run_curate

    cfg = CurateConfig(sources=[SourceConfig(type="jsonl", paths=[str(corpus)])], workers=workers)
    cfg.decontam.tasks, cfg.decontam.data_paths, _ = decontam_setup(shared)
    if dedup_only:
        for section in (cfg.langid, cfg.filters, cfg.recall, cfg.quality, cfg.decontam, cfg.mixture):
            section.enabled = False
    return run_curate(cfg, out, seed=0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--keep", type=Path, help="keep the outputs in this folder (default: a temporary one)")
    args = parser.parse_args()
    shared = shared_dir()
    corpus = shared / "corpus/refcorpus.jsonl.gz"
    labels = {r["id"]: r for r in read_jsonl(shared / "corpus/refcorpus.labels.jsonl.gz")}
    root = args.keep or Path(tempfile.mkdtemp(prefix="curate-speed-"))
    shutil.rmtree(root, ignore_errors=True)
    shards = root / "datatrove-input"
    shard_corpus(corpus, shards, args.workers)
    patch_datatrove_xxhash()
    result: dict = {"corpus": str(corpus.name), "corpus_mb": round(corpus.stat().st_size / 1e6, 1),
                    "docs": len(labels), "workers": args.workers, "cpus": os.cpu_count(), "load_average": {}}

    result["load_average"]["start"] = load_average()
    with Timed() as filters:
        datatrove_filters(shards, root / "dt-filters", args.workers)
    result["load_average"]["after_datatrove_filters"] = load_average()
    with Timed() as minhash:
        minhash_stages = datatrove_minhash(shards, root / "dt-minhash", args.workers)
    result["load_average"]["after_datatrove_minhash"] = load_average()
    with Timed() as minhash_filtered:
        datatrove_minhash(root / "dt-filters/kept", root / "dt-minhash-filtered", args.workers)
    with Timed() as ours:
        summary = infir_run(corpus, root / "infir", args.workers, shared, dedup_only=False)
    result["load_average"]["after_infir"] = load_average()
    with Timed() as dedup:
        infir_run(corpus, root / "infir-dedup", args.workers, shared, dedup_only=True)
    result["load_average"]["end"] = load_average()

    datatrove_wall, datatrove_cpu = filters.wall + minhash.wall, filters.cpu + minhash.cpu
    result |= {
        "datatrove_filters_s": round(filters.wall, 2),
        "datatrove_minhash_s": minhash_stages,
        "datatrove_filters_plus_minhash_s": round(datatrove_wall, 2),
        "datatrove_minhash_on_filtered_s": round(minhash_filtered.wall, 2),
        "infir_pipeline_s": round(ours.wall, 2),
        "infir_stage_s": summary["totals"]["stage_seconds"],
        "infir_step_s_summed_over_processes": {s["name"]: s["seconds"] for s in summary["steps"]},
        "infir_dedup_only_s": round(dedup.wall, 2),
        "cpu_s": {"datatrove_filters": round(filters.cpu, 1), "datatrove_minhash": round(minhash.cpu, 1),
                  "infir_pipeline": round(ours.cpu, 1), "infir_dedup_only": round(dedup.cpu, 1)},
        "pair_recall": {"datatrove_minhash": pair_recall(labels, kept_ids(root / "dt-minhash/kept")),
                        "infir_dedup": pair_recall(labels, kept_ids(root / "infir-dedup/kept"))},
        "speedup_vs_datatrove": round(datatrove_wall / ours.wall, 2),
        "speedup_vs_datatrove_minhash_on_filtered": round((filters.wall + minhash_filtered.wall) / ours.wall, 2),
        "dedup_speedup_vs_datatrove": round(minhash.wall / dedup.wall, 2),
        "cpu_ratio_vs_datatrove": round(datatrove_cpu / ours.cpu, 2),
        "dedup_cpu_ratio_vs_datatrove": round(minhash.cpu / dedup.cpu, 2),
        "output": str(root),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
