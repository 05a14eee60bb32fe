"""Curated documents -> token shards, in parallel processes, resumable shard by shard.

The input is cut into *shard jobs*: consecutive records of one input file adding up to
`shard_size_mb` of input. The cut depends only on the input files and that size (never on the
number of workers), so the shards, and therefore the loader's order, are the same however the
stage ran. Each job writes one shard per domain it meets and, last, a done file
(`_jobs/<job>.json`); a rerun skips jobs whose done file matches the tokenizer and settings.

Encoding is spread over `workers` processes in chunks of `chunk_docs` documents (one tokenizer
thread each: processes scale where the tokenizer's thread pool spins on busy cores); the main
process reads, writes and keeps a bounded number of chunks in flight, so memory stays flat.
Workers are forked (cheap, and it works from any entry point, unlike spawn, which must re-import
the caller's main module) while TOKENIZERS_PARALLELISM=false: the children never touch the
parent's tokenizer thread pool, and tokenizers does not warn about the fork.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import os
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn
from tokenizers import Tokenizer

from infir.run import read_json, write_json
from infir.tokenize.config import TokenizeConfig
from infir.tokenize.shards import (
    FORMAT_VERSION,
    INDEX_FILE,
    ShardWriter,
    doc_key,
    dtype_for_vocab,
    read_index,
)
from infir.tokenize.sources import RecordReader, parse_record

JOBS_DIR = "_jobs"


@dataclass(frozen=True)
class EncodingSpec:
    """What a worker needs to encode like the main tokenizer: its serialized backend and the document end."""

    tokenizer_json: str
    doc_end_id: int
    pad_id: int
    vocab_size: int
    fingerprint: str


# ---- worker side ---------------------------------------------------------------------------------
_worker: tuple[Tokenizer, int, np.dtype] | None = None


def _init_worker(tokenizer_json: str, doc_end_id: int, dtype: str, threads: bool) -> None:
    global _worker
    if not threads:
        os.environ["TOKENIZERS_PARALLELISM"] = "false"
    tok = Tokenizer.from_str(tokenizer_json)
    tok.encode_special_tokens = True  # literal "<|endoftext|>" in a document is text, not a boundary
    _worker = (tok, doc_end_id, np.dtype(dtype))


def _encode_chunk(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """All documents' tokens back to back (each ending with the document end) and their lengths."""
    tok, doc_end, dtype = _worker
    encodings = tok.encode_batch_fast(texts, add_special_tokens=True)
    lengths = np.fromiter((len(e.ids) + 1 for e in encodings), dtype=np.int64, count=len(encodings))
    flat = np.empty(int(lengths.sum()), dtype=dtype)
    ends = np.cumsum(lengths)
    for e, end, n in zip(encodings, ends, lengths):
        flat[end - n : end - 1] = e.ids
    flat[ends - 1] = doc_end
    return flat, lengths


# ---- main side -----------------------------------------------------------------------------------
@contextlib.contextmanager
def _tokenizer_threads_off() -> Iterator[None]:
    """TOKENIZERS_PARALLELISM=false while worker processes are forked, then as it was."""
    before = os.environ.get("TOKENIZERS_PARALLELISM")
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    try:
        yield
    finally:
        if before is None:
            del os.environ["TOKENIZERS_PARALLELISM"]
        else:
            os.environ["TOKENIZERS_PARALLELISM"] = before


@dataclass
class _Job:
    name: str
    source: Path
    first_line: int
    writers: dict[str, ShardWriter] = field(default_factory=dict)
    input_bytes: int = 0
    empty_docs: int = 0
    last_line: int = 0


@dataclass
class _Chunk:
    job: _Job
    texts: list[str]
    meta: list[tuple[str, int]]  # (domain, doc key) per text
    closes_job: bool = False


def _job_name(file_index: int, part: int) -> str:
    return f"{file_index:04d}-{part:05d}"


def _reusable(
    path: Path, spec: EncodingSpec, cfg: TokenizeConfig, source: Path, dtype: np.dtype
) -> dict | None:
    """The done file of a job when it was made the same way and its shards are still whole, else None."""
    if not path.exists():
        return None
    done = read_json(path)
    same = (
        done.get("tokenizer") == spec.fingerprint
        and done.get("shard_size_mb") == cfg.shard_size_mb
        and done.get("source") == str(source)
        and done.get("default_domain") == cfg.default_domain
    )
    shards_dir = path.parent.parent
    bins = [
        (shards_dir / domain / f"{meta['name']}.bin", meta["tokens"] * dtype.itemsize)
        for domain, meta in done.get("shards", {}).items()
    ]
    whole = all(p.is_file() and p.stat().st_size == size for p, size in bins)
    return done if same and whole else None


class ShardingRun:
    """One pass over the inputs; `run()` returns per-domain statistics and writes the shard index."""

    def __init__(
        self,
        inputs: list[Path],
        spec: EncodingSpec,
        out_dir: Path,
        cfg: TokenizeConfig,
        log=print,
        progress: bool = True,
    ):
        self.inputs, self.spec, self.out_dir, self.cfg = [Path(p) for p in inputs], spec, Path(out_dir), cfg
        self.log, self.show_progress = log, progress
        self.dtype = dtype_for_vocab(spec.vocab_size, cfg.dtype)
        self.shard_bytes = int(cfg.shard_size_mb * 1e6)
        self.jobs_done: list[dict] = []
        self.jobs_skipped = 0

    # The record stream, cut into jobs; done jobs are skipped without parsing their records.
    def _chunks(self, advance) -> Iterator[_Chunk]:
        cfg = self.cfg
        for file_index, path in enumerate(self.inputs):
            reader = RecordReader(path)
            part, job, skipping, chunk = 0, None, False, None
            for lineno, size, payload in reader:
                if job is None:
                    name = _job_name(file_index, part)
                    done_file = self.out_dir / JOBS_DIR / f"{name}.json"
                    done = _reusable(done_file, self.spec, cfg, path, self.dtype)
                    skipping = done is not None
                    if skipping:
                        self.jobs_done.append(done)
                        self.jobs_skipped += 1
                    job = _Job(name, path, lineno)
                    chunk = _Chunk(job, [], [])
                job.input_bytes += size
                job.last_line = lineno
                if not skipping:
                    doc = parse_record(path, lineno, payload, cfg.default_domain)
                    if doc.text:
                        chunk.texts.append(doc.text)
                        chunk.meta.append((doc.domain, doc_key(doc.id or doc.text)))
                    else:
                        job.empty_docs += 1
                job_full = job.input_bytes >= self.shard_bytes
                if not skipping and (job_full or len(chunk.texts) >= cfg.chunk_docs):
                    chunk.closes_job = job_full
                    yield chunk
                    chunk = _Chunk(job, [], [])
                if job_full:
                    job, part = None, part + 1
                advance(reader.position)
            if job is not None and not skipping:
                chunk.closes_job = True
                yield chunk
            advance(reader.size)

    def _write(self, chunk: _Chunk, flat: np.ndarray, lengths: np.ndarray) -> None:
        job = chunk.job
        ends = np.cumsum(lengths)
        for (domain, key), end, n in zip(chunk.meta, ends, lengths):
            writer = job.writers.get(domain)
            if writer is None:
                writer = job.writers[domain] = ShardWriter(self.out_dir / domain, job.name, self.dtype)
            writer.append(flat[end - n : end], key)
        if chunk.closes_job:
            shards = {domain: w.close() for domain, w in sorted(job.writers.items())}
            done = {
                "job": job.name,
                "source": str(job.source),
                "first_line": job.first_line,
                "last_line": job.last_line,
                "input_bytes": job.input_bytes,
                "empty_docs": job.empty_docs,
                "tokenizer": self.spec.fingerprint,
                "shard_size_mb": self.cfg.shard_size_mb,
                "default_domain": self.cfg.default_domain,
                "shards": shards,
            }
            write_json(self.out_dir / JOBS_DIR / f"{job.name}.json", done)
            self.jobs_done.append(done)

    def run(self) -> dict:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for stale in self.out_dir.rglob(".*.tmp-*"):  # partial files of a killed run
            stale.unlink()
        total = sum(p.stat().st_size for p in self.inputs)
        t0 = time.time()
        progress = Progress(
            TextColumn("tokenize"),
            BarColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            disable=not self.show_progress,
            transient=True,
        )
        with progress:
            task = progress.add_task("tokenize", total=total)
            offset = [0, 0]  # bytes of finished files, last position in the current file

            def advance(position: int) -> None:
                if position < offset[1]:
                    offset[0] += offset[1]
                offset[1] = position
                progress.update(task, completed=offset[0] + position)

            chunks = self._chunks(advance)
            if self.cfg.workers == 0:
                _init_worker(self.spec.tokenizer_json, self.spec.doc_end_id, self.dtype.name, threads=True)
                for chunk in chunks:
                    self._write(chunk, *_encode_chunk(chunk.texts))
            else:
                self._run_pool(chunks)
        return self._finish(time.time() - t0)

    def _run_pool(self, chunks: Iterator[_Chunk]) -> None:
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        in_flight: deque[tuple[_Chunk, Future]] = deque()
        with (
            _tokenizer_threads_off(),
            ProcessPoolExecutor(
                self.cfg.workers,
                mp_context=multiprocessing.get_context(method),
                initializer=_init_worker,
                initargs=(self.spec.tokenizer_json, self.spec.doc_end_id, self.dtype.name, False),
            ) as pool,
        ):
            for chunk in chunks:
                in_flight.append((chunk, pool.submit(_encode_chunk, chunk.texts)))
                while len(in_flight) > 2 * self.cfg.workers:  # bounded: memory stays flat on any input
                    done_chunk, future = in_flight.popleft()
                    self._write(done_chunk, *future.result())
            while in_flight:
                done_chunk, future = in_flight.popleft()
                self._write(done_chunk, *future.result())

    def _finish(self, seconds: float) -> dict:
        domains: dict[str, dict] = {}
        for done in sorted(self.jobs_done, key=lambda d: d["job"]):
            for domain, meta in done["shards"].items():
                entry = domains.setdefault(domain, {"shards": [], "docs": 0, "tokens": 0})
                entry["shards"].append(meta)
                entry["docs"] += meta["docs"]
                entry["tokens"] += meta["tokens"]
        tokens = sum(d["tokens"] for d in domains.values())
        docs = sum(d["docs"] for d in domains.values())
        input_bytes = sum(d["input_bytes"] for d in self.jobs_done)
        index = {
            "format": FORMAT_VERSION,
            "dtype": self.dtype.name,
            "vocab_size": self.spec.vocab_size,
            "doc_end_id": self.spec.doc_end_id,
            "pad_id": self.spec.pad_id,
            "tokenizer": self.spec.fingerprint,
            "domains": dict(sorted(domains.items())),
        }
        write_json(self.out_dir / INDEX_FILE, index)
        rate = tokens / seconds if seconds > 0 else float("inf")
        self.log(
            f"tokenize: {docs} docs, {tokens} tokens from {input_bytes / 1e6:.1f} MB of input in "
            f"{seconds:.1f}s ({rate / 1e6:.2f}M tokens/s, "
            f"{input_bytes / 1e6 / max(seconds, 1e-9):.1f} MB/s; "
            f"{len(self.jobs_done)} shard jobs, {self.jobs_skipped} reused, {self.cfg.workers} workers)"
        )
        return {
            "docs": docs,
            "tokens": tokens,
            "input_bytes": input_bytes,
            "seconds": round(seconds, 3),
            "tokens_per_s": round(rate, 1),
            "jobs": len(self.jobs_done),
            "jobs_reused": self.jobs_skipped,
            "empty_docs": sum(d["empty_docs"] for d in self.jobs_done),
            "dtype": self.dtype.name,
            "domains": {
                d: {"docs": e["docs"], "tokens": e["tokens"], "shards": len(e["shards"])}
                for d, e in index["domains"].items()
            },
        }


def select_validation(out_dir: Path, fraction: float, min_docs: int, max_docs: int) -> dict[str, dict]:
    """Hold out the documents with the smallest id hashes per domain; writes `<domain>/val_docs.npy`.

    max(ceil(fraction * docs), min_docs) documents, at most max_docs and half of the domain, none
    when fraction and min_docs are zero. Depends on document ids only, not on sharding or workers.
    """
    index = read_index(out_dir)
    result = {}
    for domain, entry in index["domains"].items():
        folder = out_dir / domain
        keys = [np.load(folder / f"{m['name']}.key.npy") for m in entry["shards"]]
        lengths = [np.diff(np.load(folder / f"{m['name']}.idx.npy")) for m in entry["shards"]]
        keys_all = np.concatenate(keys) if keys else np.zeros(0, np.uint64)
        lens_all = np.concatenate(lengths) if lengths else np.zeros(0, np.int64)
        n = len(keys_all)
        want = 0 if (fraction == 0 and min_docs == 0) else max(math.ceil(fraction * n), min_docs)
        k = min(want, max_docs, n // 2)
        order = np.lexsort((np.arange(n), keys_all))  # by key, ties by position: deterministic
        val = np.sort(order[:k]).astype(np.int64)
        np.save(folder / "val_docs.npy", val)
        result[domain] = {"docs": int(k), "tokens": int(lens_all[val].sum())}
    return result
