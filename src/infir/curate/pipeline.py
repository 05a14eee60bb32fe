"""`run_curate`: the InfiR data pipeline as datatrove stages with bounded driver steps between.

  prepare (driver)             decontamination index from the registry's benchmark texts
                               (meanwhile a forked job generates the recall seeds)
  scan (parallel, per shard)   read -> validate -> language id -> domain-aware heuristics
                               -> features, a batch at a time, streamed to files: exact hashes
                                  and MinHash band keys in sorted runs, signatures, ids,
                                  benchmark n-gram matches, the shard's share of the classifier
                                  sample (one word hashing serves MinHash and decontamination)
  dedup (parallel, per key range, then driver)
                               candidate pairs per range of bucket keys (as many ranges as
                               the rows counted after the scan need), verified on the signatures; the
                               driver joins the verified pairs into clusters. Meanwhile forked
                               jobs train recall (per domain) and quality on the sample
  score (parallel, per shard)  the classifiers on every document; per-prefix counts, from which
                               the driver picks the URL prefixes to expand (a range of prefix
                               hashes at a time)
  finish (parallel, per shard) apply recall + dedup -> quality -> decontamination
                               -> domain counts -> DIR/kept/<domain>_<shard>.jsonl.gz

No step holds per-document data of the whole corpus: workers hold a batch, a run or key range of
`dedup.partition_rows` rows, their shard's sample, and one count per URL prefix of their shard;
the driver holds the sample (`max_train_docs`), the verified pairs, one range of prefix counts at
a time and the hashes of the expanded prefixes. Each parallel stage resumes through datatrove's
completion files, each driver step through its own marker, so a killed run rerun on the same
output finishes only what is left. Every decision is deterministic and keyed by input position (file, record), never by shard
(fixed seeds, single-threaded fastText, order-key sample and cluster representatives), so the
kept set depends neither on the shard plan nor on where a run was interrupted.

The work folder (`curate.work_dir`, else `<output>/_work`) may be a local path or an fsspec URL:
`workfolder.WorkFolder` moves its files between each node's cache and the folder, and every
"is it done" question (completion files, driver markers) is asked of the folder itself.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path

from infir.curate.config import CurateConfig
from infir.curate.executors import run_pipeline
from infir.curate.jobs import Job
from infir.curate.progress import Reporter
from infir.curate.readers.sources import ShardReader, plan_shards
from infir.curate.summary import build_summary
from infir.curate.workfolder import WorkFolder

log = logging.getLogger("infir.curate")


def input_stamps(shards) -> dict[str, list]:
    """Size and modification stamp of every input file: a file rewritten in place (same path, other
    content) must not be served the work done on its old content."""
    from fsspec.core import url_to_fs

    stamps = {}
    for path in sorted({s.path for s in shards if s.path is not None}):
        fs, local = url_to_fs(path)
        info = fs.info(local)
        mtime = info.get("mtime", info.get("LastModified", info.get("last_modified", info.get("updated"))))
        stamps[path] = [
            info.get("size"),
            str(mtime),
            str(info.get("ETag", info.get("etag", info.get("md5Hash", "")))),
        ]
    return stamps


def _fingerprint(cfg: CurateConfig, seed: int, shards) -> str:
    """Every setting that changes a decision, the shard plan (finished shards are reused by rank,
    so a plan made for another worker count would mix two partitions of the input) and every
    input's stamp. The executor and the worker count change neither, once the plan is fixed."""
    payload = cfg.model_dump(
        mode="json", exclude={"executor", "workers", "ray", "work_dir", "work_cache_dir"}
    )
    plan = [[s.source, s.path, s.part, s.parts] for s in shards]
    blob = json.dumps([payload, seed, plan, input_stamps(shards)], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def locations(cfg: CurateConfig, output_dir) -> tuple:
    """(the output as a datatrove DataFolder, its URL, the work folder's URL): `curate.work_dir`,
    else `<output>/_work`; either may be a local path or an fsspec URL (see `workfolder`)."""
    from datatrove.io import get_datafolder

    url = str(output_dir).rstrip("/")
    out = get_datafolder(url)
    work = str(cfg.work_dir).rstrip("/") if cfg.work_dir is not None else f"{url}/_work"
    return out, url, work


def _prepare_output(out, work: WorkFolder, fingerprint: str) -> None:
    """Reuse partial work of the same config; start clean when the config changed."""
    previous = work.read_text("fingerprint")
    if previous is not None and previous != fingerprint:
        log.warning("config, shard plan or inputs changed since the last run in %s: starting over", work.url)
        work.clear()
        for name in ("kept", "removed", "summary.json", "mixtures.json"):
            if out.exists(name):
                out.rm(name, recursive=out.isdir(name))
    if previous != fingerprint:
        work.write_text("fingerprint", fingerprint)
    work.local.mkdir(parents=True, exist_ok=True)


def file_ordinals(shards) -> list[int]:
    """Per shard, the number of the input file it reads, counted in plan order (sources in config
    order, each source's files sorted): the same numbers for any count of shards."""
    numbers: dict[tuple, int] = {}
    return [numbers.setdefault((s.source, s.path), len(numbers)) for s in shards]


def scan_pipeline(cfg: CurateConfig, shards, out: str, work: WorkFolder) -> tuple[list, list]:
    from infir.curate.filters import build_extra_filters
    from infir.curate.filters.heuristic import HeuristicFilter
    from infir.curate.filters.langid import LanguageFilter
    from infir.curate.shard_steps import Featurize
    from infir.curate.steps import ShardStats, Validate

    removed = out if cfg.write_removed else None
    steps = [Validate(removed)]
    if cfg.langid.enabled:
        steps.append(LanguageFilter(cfg.langid, removed))
    if cfg.filters.enabled:
        steps.append(HeuristicFilter(cfg.filters, removed))
    steps += build_extra_filters(cfg.extra_filters, removed)
    featurize = Featurize(
        cfg.dedup,
        cfg.recall if (cfg.recall.enabled or cfg.quality.enabled) else None,
        work,
        cfg.decontam,
        "decontam.npz" if cfg.decontam.enabled else None,
        programs=cfg.recall.enabled and cfg.recall.code_requires_program,
        file_of_rank=file_ordinals(shards),
        sample_docs=cfg.max_train_docs,
    )
    pipeline = [ShardReader(cfg.sources, shards), *steps, featurize, ShardStats(steps, work, "stats/scan")]
    return pipeline, steps


def _score_columns(cfg: CurateConfig) -> int:
    return (len(cfg.recall.domains) if cfg.recall.enabled else 0) + 1


def score_pipeline(cfg: CurateConfig, work: WorkFolder) -> list:
    from infir.curate.shard_steps import ScanReader, ScoreShard

    return [
        ScanReader(work),
        ScoreShard(work, cfg.recall, cfg.recall.domains if cfg.recall.enabled else [], cfg.quality.enabled),
    ]


def finish_pipeline(cfg: CurateConfig, out: str, work: WorkFolder) -> list:
    from infir.curate.filters.decontam import Decontaminate
    from infir.curate.mixture import DomainCount
    from infir.curate.filters.quality import QualityFilter
    from infir.curate.shard_steps import ApplyDedup, ApplyRecall, ScanReader
    from infir.curate.steps import ShardStats, gzip_writer

    removed = out if cfg.write_removed else None
    steps = [ApplyRecall(work, cfg.recall)]
    if cfg.dedup.enabled:
        steps.append(ApplyDedup(work, removed))
    if cfg.quality.enabled:
        steps.append(QualityFilter(cfg.quality, work, _score_columns(cfg), removed))
    if cfg.decontam.enabled:
        steps.append(Decontaminate(removed))
    steps.append(DomainCount(cfg.mixture))
    writer = gzip_writer(f"{out}/kept", "${domain}_${rank}.jsonl.gz")
    return [ScanReader(work), *steps, writer, ShardStats(steps, work, "stats/finish")]


def _dedup_pairs(cfg: CurateConfig, work: WorkFolder, n_shards: int, outputs: tuple) -> dict:
    """The pair stage (one task per key range of about `dedup.partition_rows` rows), then clusters
    on the driver."""
    from infir.curate.dedup.minhash import MinHasher
    from infir.curate.dedup.stages import FindPairs, plan_partitions, resolve

    if work.exists("dedup.json"):
        return work.read_json("dedup.json")
    t0 = time.perf_counter()
    if cfg.dedup.enabled:
        from infir.curate.select import prepare_boilerplate

        boilerplate = (
            prepare_boilerplate(cfg, work, n_shards) if cfg.dedup.content_threshold is not None else None
        )
        num_perm = MinHasher(cfg.dedup).num_perm
        parts = plan_partitions(work, cfg.dedup)
        run_pipeline(
            cfg.executor,
            [FindPairs(work, cfg.dedup, num_perm, parts)],
            parts,
            cfg.workers,
            work.url_of("logs/pairs"),
            cfg.ray,
            outputs,
        )
        report = resolve(work, n_shards, parts)
        report["boilerplate"] = boilerplate
        report["partitions"] = parts
    else:
        report = {}
    report["wall_seconds"] = time.perf_counter() - t0
    work.write_text("dedup.json", json.dumps(report))
    return report


def run_curate(cfg: CurateConfig, output_dir: Path, seed: int = 0) -> dict:
    """Curate `cfg.sources` into `output_dir`, a path or an fsspec URL (see the module doc and
    `CurateConfig.work_dir`); returns the summary."""
    from infir.curate.select import (
        expand_prefixes,
        finish_training,
        prepare_decontam,
        scan_seconds,
        start_seeds,
        start_training,
    )

    folder, out, work_url = locations(cfg, output_dir)
    folder.makedirs("", exist_ok=True)
    t_start = time.perf_counter()
    shards = plan_shards(cfg.sources, cfg.tasks or cfg.workers)
    fingerprint = _fingerprint(cfg, seed, shards)
    work = WorkFolder(work_url, fingerprint, cfg.work_cache_dir)
    _prepare_output(folder, work, fingerprint)
    outputs = (out,)  # checked, like the work folder's logs, on a Ray cluster of several nodes
    reporter = Reporter()
    work.write_text("shards.json", json.dumps([s.__dict__ for s in shards]))
    n = len(shards)
    seeds_job = start_seeds(cfg, work)  # the recall seeds are generated while the scan runs
    train_jobs = None
    try:
        walls = {}
        prepare = {}
        if cfg.decontam.enabled:
            with reporter.stage("prepare", "decontamination index from the benchmark texts") as done:
                prepare["decontam"] = prepare_decontam(cfg, work)
                walls["prepare"] = done()
        with reporter.stage("scan", f"{n} shards on {cfg.workers} {cfg.executor} workers") as done:
            pipeline, _ = scan_pipeline(cfg, shards, out, work)
            run_pipeline(cfg.executor, pipeline, n, cfg.workers, work.url_of("logs/scan"), cfg.ray, outputs)
            walls["scan"] = done()
        with reporter.stage(
            "dedup", "pairs per key range, clusters; classifiers train on the sample meanwhile"
        ) as done:
            train_jobs = start_training(cfg, work, n, seed, seeds_job)
            dedup = _dedup_pairs(cfg, work, n, outputs)
            train = finish_training(cfg, work, train_jobs)
            train_jobs = None
            walls["dedup"] = done()
        with reporter.stage("score", "recall and quality classifiers on every document") as done:
            if cfg.recall.enabled or cfg.quality.enabled:
                run_pipeline(
                    cfg.executor,
                    score_pipeline(cfg, work),
                    n,
                    cfg.workers,
                    work.url_of("logs/score"),
                    cfg.ray,
                    outputs,
                )
            expand = expand_prefixes(cfg, work, n)
            walls["score"] = done()
        with reporter.stage("finish", "dedup, quality, decontamination, domain outputs") as done:
            run_pipeline(
                cfg.executor,
                finish_pipeline(cfg, out, work),
                n,
                cfg.workers,
                work.url_of("logs/finish"),
                cfg.ray,
                outputs,
            )
            walls["finish"] = done()
    finally:
        if seeds_job is not None:
            seeds_job.cancel()  # a no-op once collected; stops it when a stage failed
        for job in (train_jobs or {}).values():
            if isinstance(job, Job):
                job.cancel()
    featurize = scan_seconds(work, n)
    select_report = {
        **train,
        "dedup": {**dedup, "seconds": featurize["dedup"] + dedup.get("wall_seconds", 0.0)},
        "expand": expand,
        "decontam_match_seconds": featurize["decontam"],
        **prepare,
    }
    select_report["recall"]["seconds"] += featurize["recall"] + expand.get("score_seconds", 0.0)
    summary = build_summary(cfg, folder, work, n, select_report, walls, time.perf_counter() - t_start)
    work.drop_cache()  # the driver's copy; the work folder keeps everything for a rerun
    reporter.funnel(summary)
    return summary
