"""The global pass on the driver: everything that needs all shards at once.

Reads the scan's features, runs recall and dedup clustering, trains (or loads) the quality model
and scores every document, and writes one decision file per shard for the finish stage.
Its report is saved last (`_work/select.json`): when present, a rerun skips the pass.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path

import numpy as np

from infir.curate.config import CurateConfig
from infir.curate.jobs import Job

log = logging.getLogger("infir.curate")


def _load_scan(scan: Path, n_shards: int):
    exact, sigs, texts, meta, sizes, featurize_seconds = [], [], [], [], [], {"dedup": 0.0, "recall": 0.0, "decontam": 0.0}
    for rank in range(n_shards):
        with np.load(scan / f"{rank:05d}.npz") as data:
            exact.append(data["exact"])
            sigs.append(data["sigs"])
        lines = (scan / f"{rank:05d}.recall.txt").read_text(encoding="utf-8").split("\n")[:-1]
        info = json.loads((scan / f"{rank:05d}.meta.json").read_text())
        texts += lines or [""] * len(info["docs"])  # no recall text when recall is off
        meta += info["docs"]
        sizes.append(len(info["docs"]))
        for key in featurize_seconds:
            featurize_seconds[key] += info["seconds"][key]
    return (np.concatenate(exact), np.concatenate(sigs), texts, meta, sizes, featurize_seconds)


def prepare_decontam(cfg: CurateConfig, work: Path) -> dict:
    """Builds (once) the benchmark n-gram index the scan matches documents against, from the
    evaluation Task registry; a listed task that cannot be loaded stops the run with its name."""
    from infir.curate.decontam import build_index, save_index

    done = work / "decontam.json"
    if done.exists() and (work / "decontam.npz").exists():
        return json.loads(done.read_text())
    t0 = time.perf_counter()
    index, report = build_index(cfg.decontam)
    save_index(index, work / "decontam.npz")
    result = {"index": report, "index_seconds": time.perf_counter() - t0}
    done.write_text(json.dumps(result))
    return result


def _quality_job(cfg: CurateConfig, texts: list[str], seed: int, work: Path) -> tuple[np.ndarray, dict]:
    from infir.curate.quality import score_texts, train_quality_model

    t0 = time.perf_counter()
    if cfg.quality.model_path:
        shutil.copyfile(cfg.quality.model_path, work / "quality.bin")
        report = {"model": cfg.quality.model_path}
    else:
        report = train_quality_model(cfg.quality, cfg.recall, texts, seed, work / "quality.bin")
    scores = score_texts(work / "quality.bin", texts)
    report["seconds"] = time.perf_counter() - t0
    return scores, report


def _recall_job(domain: str, cfg: CurateConfig, texts: list[str], meta: list[dict], seed: int, work: Path,
                seeds: dict):
    from infir.curate.recall import recall_one

    t0 = time.perf_counter()
    result = recall_one(domain, texts, [m["url"] for m in meta], cfg.recall, seed, guesses=[m["kind"] for m in meta],
                        model_dir=work, programs=[m["program"] for m in meta], seeds=seeds)
    result[2]["seconds"] = time.perf_counter() - t0
    return result


def start_seeds(cfg: CurateConfig, work: Path) -> Job | None:
    """Loads the recall seeds in a child process, started before the scan: generating them takes
    a core for a few seconds, and the driver has one to spare while it builds the decontamination
    index and waits for the scan."""
    if not cfg.recall.enabled or (work / "select.json").exists():
        return None
    from infir.curate.recall import load_all_seeds

    return Job(load_all_seeds, cfg.recall, parallel=_fork_jobs(cfg), folder=work)


def _fork_jobs(cfg: CurateConfig) -> bool:
    """Forked jobs need spare local cores and a driver without a Ray client (its threads do not
    survive a fork); with Ray, the driver runs them itself."""
    return cfg.workers > 1 and cfg.executor == "local"


def run_select(cfg: CurateConfig, work: Path, n_shards: int, seed: int, seeds_job: Job | None = None) -> dict:
    """The global pass. Recall per domain and the quality model run in forked children (local
    executor, more than one worker) while the driver clusters duplicates."""
    done = work / "select.json"
    if done.exists():
        return json.loads(done.read_text())
    exact, sigs, texts, meta, sizes, featurize_seconds = _load_scan(work / "scan", n_shards)
    # Shards hold documents in a plan-dependent interleaving: every global decision is taken in
    # input order, then mapped back to the shards' rows.
    perm = np.argsort(np.array([m["order"] for m in meta], dtype=np.uint64), kind="stable")
    exact, sigs = exact[perm], sigs[perm]
    texts, meta = [texts[i] for i in perm], [meta[i] for i in perm]
    report: dict = {"docs": len(texts)}
    parallel = _fork_jobs(cfg)
    jobs: list[Job] = []
    try:
        recall_jobs = {}
        if cfg.recall.enabled and texts:
            seeds = (seeds_job or start_seeds(cfg, work)).result()
            recall_jobs = {d: Job(_recall_job, d, cfg, texts, meta, seed, work, seeds, parallel=parallel,
                                  folder=work) for d in cfg.recall.domains}
            jobs += recall_jobs.values()
        quality_job = None
        if cfg.quality.enabled and texts:
            quality_job = Job(_quality_job, cfg, texts, seed, work, parallel=parallel, folder=work)
            jobs.append(quality_job)

        t0 = time.perf_counter()
        removed = {}
        if cfg.dedup.enabled:
            from infir.curate.dedup import find_duplicates

            removed = find_duplicates(exact, sigs, cfg.dedup)
        report["dedup"] = {"seconds": time.perf_counter() - t0 + featurize_seconds["dedup"],
                           "clustering_seconds": time.perf_counter() - t0}

        if recall_jobs:
            from infir.curate.recall import assign_domains

            results = {d: job.result() for d, job in recall_jobs.items()}
            scores = {d: r[0] for d, r in results.items()}
            domains = assign_domains(scores, {d: r[1] for d, r in results.items()}, len(texts))
            report["recall"] = {"domains": {d: r[2] for d, r in results.items()},
                                "seconds": sum(r[2]["seconds"] for r in results.values()) + featurize_seconds["recall"]}
        else:
            domains = [m["kind"] if m["kind"] in ("math", "code") else "web" for m in meta]
            scores, report["recall"] = {}, {"method": "rule-based guess (recall disabled)", "seconds": 0.0}
        quality = None
        if quality_job is not None:
            quality, report["quality"] = quality_job.result()
    finally:
        for job in jobs:
            job.cancel()  # only jobs still running after an error

    inverse = np.empty_like(perm)
    inverse[perm] = np.arange(len(perm))
    removed = {int(perm[i]): (int(perm[k]), reason) for i, (k, reason) in removed.items()}
    meta = [meta[j] for j in inverse]
    domains = [domains[j] for j in inverse]
    scores = {d: np.asarray(s)[inverse] for d, s in scores.items()}
    quality = np.asarray(quality)[inverse] if quality is not None else np.zeros(len(perm), dtype=np.float32)

    decisions = work / "decisions"
    decisions.mkdir(parents=True, exist_ok=True)
    start = 0
    for rank, size in enumerate(sizes):
        dups = {str(i - start): [meta[k]["id"], reason] for i in range(start, start + size)
                if (hit := removed.get(i)) for k, reason in [hit]}
        payload = {"domain": domains[start:start + size],
                   "scores": {d: [round(float(x), 4) for x in s[start:start + size]] for d, s in scores.items()},
                   "dups": dups}
        if cfg.quality.enabled:  # no survivors: an empty list, not a missing one
            payload["quality"] = [round(float(x), 4) for x in quality[start:start + size]]
        (decisions / f"{rank:05d}.json").write_text(json.dumps(payload))
        start += size

    report["decontam_match_seconds"] = featurize_seconds["decontam"]
    tmp = done.with_suffix(".tmp")
    tmp.write_text(json.dumps(report))
    tmp.replace(done)
    return report
