"""Driver work between the parallel stages, on bounded data only.

- `prepare_decontam`: the benchmark n-gram index, from the evaluation Task registry;
- `start_training` / `finish_training`: the recall classifiers (one per domain) and the quality
  model, trained in forked jobs on the run's classifier sample: the `max_train_docs` documents
  with the smallest draws (`shard_steps.sample_hash`), merged from the shards' own smallest;
- `expand_prefixes`: URL prefixes whose pages are mostly recalled, from the per-prefix counts the
  score stage wrote, summed one range of prefix hashes at a time.
Dedup clusters are resolved in `dedup.stages.resolve`. Each step saves its report last; when it is
present, a rerun skips the step.
"""

from __future__ import annotations

import heapq
import json
import logging
import shutil
import time

import numpy as np

from infir.curate.config import CurateConfig
from infir.curate.jobs import Job
from infir.curate.workfolder import WorkFolder

log = logging.getLogger("infir.curate")


def _save(work: WorkFolder, name: str, report: dict) -> dict:
    """Saves a driver step's report, its completion marker: last, after the files it describes."""
    work.write_text(name, json.dumps(report))
    return report


def prepare_decontam(cfg: CurateConfig, work: WorkFolder) -> dict:
    """Builds (once) the benchmark n-gram index the scan matches documents against, from the
    evaluation Task registry; a listed task that cannot be loaded stops the run with its name."""
    from infir.curate.filters.decontam import build_index, save_index

    if work.exists("decontam.json") and work.exists("decontam.npz"):
        return work.read_json("decontam.json")
    t0 = time.perf_counter()
    index, report = build_index(cfg.decontam)
    save_index(index, work / "decontam.npz")
    work.publish("decontam.npz")
    return _save(work, "decontam.json", {"index": report, "index_seconds": time.perf_counter() - t0})


def scan_seconds(work: WorkFolder, n_shards: int) -> dict:
    total = {"dedup": 0.0, "recall": 0.0, "decontam": 0.0}
    for rank in range(n_shards):
        text = work.read_text(f"scan/{rank:05d}.meta.json")
        if text is not None:
            for key, value in json.loads(text)["seconds"].items():
                total[key] += value
    return total


def _sample_records(work: WorkFolder, n_shards: int, size: int, field: str):
    """(order, record[field]) of the run's sample: the `size` smallest draws over all shards (each
    shard file is sorted by draw and holds at most `size`), streamed, in input order."""

    def records(rank: int):
        path = work.fetch(f"sample/{rank:05d}.jsonl", missing_ok=True)
        if path is not None:
            with open(path, encoding="utf-8") as f:
                for line in f:
                    r = json.loads(line)
                    yield r["draw"], r["order"], r.get(field)

    merged = heapq.merge(*(records(r) for r in range(n_shards)))
    return sorted((order, value) for _, (_, order, value) in zip(range(size), merged))


def read_sample(work: WorkFolder, n_shards: int, size: int) -> tuple[list[str], list[str]]:
    """The classifier sample in input order: (texts as the classifiers read them, rule-based kinds)."""
    texts = _sample_records(work, n_shards, size, "text")
    kinds = _sample_records(work, n_shards, size, "kind")
    return [t for _, t in texts], [k for _, k in kinds]


def prepare_boilerplate(cfg: CurateConfig, work: WorkFolder, n_shards: int) -> dict:
    """Lines held by many of the sample's documents (`dedup.boilerplate_min_fraction`): the pair
    stage leaves them out when it compares two pages' content. Saved as `boilerplate.u64`."""
    from infir.curate.dedup.minhash import boilerplate_lines

    path = work / "boilerplate.u64"
    if work.exists("boilerplate.u64"):
        return {"lines": int(work.fetch("boilerplate.u64").stat().st_size // 8)}
    lines = [
        np.asarray(v, dtype=np.uint64)
        for _, v in _sample_records(work, n_shards, cfg.max_train_docs, "lines")
    ]
    min_docs = max(
        cfg.dedup.boilerplate_min_docs, int(np.ceil(cfg.dedup.boilerplate_min_fraction * len(lines)))
    )
    common = boilerplate_lines(lines, min_docs)
    tmp = path.with_suffix(".tmp")
    common.tofile(tmp)
    tmp.replace(path)
    work.publish(path)
    return {"lines": int(len(common)), "min_docs": min_docs, "sample_docs": len(lines)}


def _recall_train(
    domain: str,
    cfg: CurateConfig,
    texts: list[str],
    kinds: list[str],
    seed: int,
    work: WorkFolder,
    seeds: dict,
) -> dict:
    from infir.curate.recall.domains import recall_domain

    t0 = time.perf_counter()
    k = cfg.recall.domains.index(domain)
    likely = np.array([g == domain for g in kinds], dtype=bool)
    _, history, model = recall_domain(
        domain,
        texts,
        seeds["positive"],
        cfg.recall,
        seed + 1000 * k,
        likely,
        seeds["negative"].get(domain, []),
    )
    model.save_model(str(work / f"recall_{domain}.bin"))
    return {
        "seeds": len(seeds["positive"][domain]),
        "sample_docs": len(texts),
        "rounds": history,
        "seconds": time.perf_counter() - t0,
    }


def _quality_train(cfg: CurateConfig, texts: list[str], seed: int, work: WorkFolder) -> dict:
    from infir.curate.filters.quality import train_quality_model

    t0 = time.perf_counter()
    if cfg.quality.model_path:
        shutil.copyfile(cfg.quality.model_path, work / "quality.bin")
        report = {"model": cfg.quality.model_path}
    else:
        report = train_quality_model(cfg.quality, cfg.recall, texts, seed, work / "quality.bin")
    report["seconds"] = time.perf_counter() - t0
    return report


def start_seeds(cfg: CurateConfig, work: WorkFolder) -> Job | None:
    """Loads the recall seeds in a child process, started before the scan: generating them takes
    a core for a few seconds, and the driver has one to spare while it builds the decontamination
    index and waits for the scan."""
    if not cfg.recall.enabled or work.exists("train.json"):
        return None
    from infir.curate.recall.domains import load_all_seeds

    return Job(load_all_seeds, cfg.recall, parallel=_fork_jobs(cfg), folder=work.local)


def _fork_jobs(cfg: CurateConfig) -> bool:
    """Forked jobs need spare local cores and a driver without a Ray client (its threads do not
    survive a fork); with Ray, the driver runs them itself."""
    return cfg.workers > 1 and cfg.executor == "local"


def start_training(
    cfg: CurateConfig, work: WorkFolder, n_shards: int, seed: int, seeds_job: Job | None
) -> dict[str, Job] | None:
    """Starts the classifier jobs (forked where cores allow, so they train while the dedup pairs
    are found); None when a previous run already trained them."""
    if work.exists("train.json"):
        return None
    texts, kinds = read_sample(work, n_shards, cfg.max_train_docs)
    jobs: dict[str, Job] = {}
    parallel = _fork_jobs(cfg)
    try:
        if cfg.recall.enabled and texts:
            seeds = (seeds_job or start_seeds(cfg, work)).result()
            for d in cfg.recall.domains:
                jobs[d] = Job(
                    _recall_train,
                    d,
                    cfg,
                    texts,
                    kinds,
                    seed,
                    work,
                    seeds,
                    parallel=parallel,
                    folder=work.local,
                )
        if cfg.quality.enabled and (texts or cfg.quality.model_path or cfg.quality.labels_path):
            jobs["quality"] = Job(
                _quality_train, cfg, texts, seed, work, parallel=parallel, folder=work.local
            )
    except BaseException:
        for job in jobs.values():
            job.cancel()
        raise
    jobs["_sample"] = len(texts)  # type: ignore[assignment]
    return jobs


def finish_training(cfg: CurateConfig, work: WorkFolder, jobs: dict | None) -> dict:
    if jobs is None:
        return work.read_json("train.json")
    sample = jobs.pop("_sample")
    try:
        results = {name: job.result() for name, job in jobs.items()}
    finally:
        for job in jobs.values():
            job.cancel()  # only jobs still running after an error
    report: dict = {"sample_docs": sample, "max_train_docs": cfg.max_train_docs}
    if cfg.recall.enabled:
        domains = {d: results[d] for d in cfg.recall.domains if d in results}
        report["recall"] = {"domains": domains, "seconds": sum(r["seconds"] for r in domains.values())}
    else:
        report["recall"] = {"method": "rule-based guess (recall disabled)", "seconds": 0.0}
    if "quality" in results:
        report["quality"] = results["quality"]
    # uploaded here, not in the jobs: a forked child must not use the driver's filesystem client
    work.publish(
        *[f"recall_{d}.bin" for d in cfg.recall.domains if d in results],
        *(["quality.bin"] if "quality" in results else []),
    )
    return _save(work, "train.json", report)


def expand_prefixes(cfg: CurateConfig, work: WorkFolder, n_shards: int) -> dict:
    """Domain-level expansion: a URL prefix with at least `expand_min_pages` pages, of which at
    least `expand_min_fraction` are recalled, has its other pages reconsidered at the lower
    `expand_threshold` (applied per document in the finishing stage). The shards' counts, runs
    sorted by prefix hash, are summed one range of hashes at a time (as many ranges as hold about
    `dedup.partition_rows` rows each), so memory follows that setting, not the number of prefixes.
    Writes `decisions/expand_<domain>.u64`, the sorted hashes of the expanded prefixes."""
    import math

    from infir.curate.dedup.stages import PREFIX_BITS, read_range
    from infir.curate.shard_steps import prefix_dtype

    if work.exists("expand.json"):
        return work.read_json("expand.json")
    t0 = time.perf_counter()
    domains = cfg.recall.domains if cfg.recall.enabled else []
    dtype = prefix_dtype(len(cfg.recall.domains) + 1 if cfg.recall.enabled else 1)
    sizes = work.sizes("prefixes", ".bin")
    runs = [f"prefixes/{rank:05d}.bin" for rank in range(n_shards) if f"{rank:05d}.bin" in sizes]
    score_seconds = sum(work.read_json(p[: -len(".bin")] + ".json")["seconds"] for p in runs)
    rows = sum(sizes.values()) // dtype.itemsize
    parts = max(1, min(1 << PREFIX_BITS, math.ceil(rows / cfg.dedup.partition_rows)))
    expanded: dict[str, list[np.ndarray]] = {d: [] for d in domains}
    distinct = 0
    for part in range(parts):
        block = read_range(work, runs, dtype, part, parts)
        if not len(block):
            continue
        block = block[np.argsort(block["hash"], kind="stable")]
        starts = np.flatnonzero(np.r_[True, block["hash"][1:] != block["hash"][:-1]])
        counts, hashes = np.add.reduceat(block["counts"], starts, axis=0), block["hash"][starts]
        distinct += len(hashes)
        for k, d in enumerate(domains):
            chosen = (counts[:, 0] >= cfg.recall.expand_min_pages) & (
                counts[:, k + 1] >= cfg.recall.expand_min_fraction * counts[:, 0]
            )
            expanded[d].append(hashes[chosen])
    out = work / "decisions"
    out.mkdir(parents=True, exist_ok=True)
    for d, chunks in expanded.items():
        # ranges ascend and each is sorted: the concatenation is sorted
        np.concatenate(chunks or [np.zeros(0, dtype=np.uint64)]).tofile(out / f"expand_{d}.u64")
        work.publish(out / f"expand_{d}.u64")
    return _save(
        work,
        "expand.json",
        {
            "prefixes": distinct,
            "expanded": {d: int(sum(map(len, v))) for d, v in expanded.items()},
            "ranges": parts,
            "score_seconds": score_seconds,
            "seconds": time.perf_counter() - t0,
        },
    )
