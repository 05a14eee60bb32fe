"""Steps that carry documents between the parallel stages and the driver.

`Featurize` closes the scan: it streams, per shard and in order, what the later stages need
(dedup rows, signatures, ids, the shard's share of the classifier sample). `ScanReader` reopens a
scanned shard; `ScoreShard` applies the classifiers trained on the sample to every document;
`ApplyRecall` / `ApplyDedup` apply the decisions in the finishing stage.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Iterator

import numpy as np
from datatrove.data import Document
from datatrove.pipeline.base import PipelineStep

from infir.curate.config import DecontamConfig, DedupConfig, RecallConfig
from infir.curate.dedup.minhash import MinHasher, exact_hash, line_hashes
from infir.curate.dedup.hashing import word_hashes_many
from infir.curate.recall.classifier import normalize
from infir.curate.filters.domain_guess import guess_domain, parses_cached
from infir.curate.filters.rules import is_program
from infir.curate.steps import CurateStep, batched, scan_record
from infir.curate.workfolder import WorkFolder


ROW_BITS = 40


def order_key(file_ordinal: int, row: int) -> int:
    """A document's place in the input (file, then record), the same under any shard plan: every
    choice that could depend on order (cluster representatives, classifier samples) uses it."""
    return (file_ordinal << ROW_BITS) | row


def _atomic_bytes(path: Path, write) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        write(f)
    tmp.replace(path)


def sample_hash(orders: np.ndarray) -> np.ndarray:
    """A document's draw for the classifier sample: a bijective mix of its order key, so the
    sample (the documents with the smallest draws) is the same under any shard plan."""
    from infir.curate.dedup.minhash import _mix64

    return _mix64(orders.astype(np.uint64) ^ np.uint64(0x5851F42D4C957F2D))


class Featurize(PipelineStep):
    """Computes, a batch of documents at a time, what the later stages need, and streams it to
    files: word hashes once (shared by the MinHash signatures and the benchmark n-gram lookup),
    exact hashes and band keys in sorted runs (`dedup.stages.BucketWriter`), the ids, and
    the shard's share of the classifier sample (its `sample_docs` smallest draws). Memory is a
    batch plus the sample, whatever the shard's size."""

    name = "🧬 featurize"
    type = "🧬 - FEATURES"
    batch_size = 256

    def __init__(
        self,
        dedup: DedupConfig,
        recall: RecallConfig | None,
        work: WorkFolder,
        decontam: DecontamConfig | None = None,
        decontam_index: str | None = None,
        programs: bool = False,
        file_of_rank: list[int] | None = None,
        sample_docs: int = 0,
    ):
        """`recall`: the classifier text settings, None when no classifier runs. The sample is kept
        when a classifier trains on it or dedup finds boilerplate lines in it."""
        super().__init__()
        self.dedup = dedup
        self.recall = recall  # its text settings; None: no classifier needs the text
        self.programs = programs  # whether recall needs to know which documents are programs
        self.work = work
        self.decontam = decontam
        self.decontam_index = decontam_index  # a file of the work folder
        self.file_of_rank = file_of_rank  # the input file each shard reads, numbered in plan order
        self.lines = dedup.enabled and dedup.minhash and dedup.content_threshold is not None
        self.sample_docs = sample_docs if (recall is not None or self.lines) else 0
        self.seconds = {"dedup": 0.0, "recall": 0.0, "decontam": 0.0}

    def run(self, data, rank: int = 0, world_size: int = 1) -> Iterator[Document]:
        import heapq

        import orjson

        from infir.curate.filters.decontam import DecontamIndex, contamination_of
        from infir.curate.dedup.stages import BucketWriter

        work = self.work.local
        hasher = MinHasher(self.dedup)
        index = DecontamIndex(str(self.work.fetch(self.decontam_index))) if self.decontam_index else None
        buckets = BucketWriter(work, self.dedup, rank, hasher.num_perm)
        (work / "ids").mkdir(parents=True, exist_ok=True)
        for folder in ("sample", "scan"):
            (work / folder).mkdir(parents=True, exist_ok=True)
        # the scanned documents and the ids, each with the byte offset of every row: later stages
        # read single documents (pair verification) or ids (cluster keepers) where they lie
        outputs = {}
        for name in ("ids", "scan"):
            path = work / name / f"{rank:05d}.jsonl"
            offsets = path.with_suffix(".off")
            outputs[name] = (
                open(path.with_name(path.name + ".tmp"), "wb"),
                open(offsets.with_name(offsets.name + ".tmp"), "wb"),
                path,
                offsets,
            )
        file_number = self.file_of_rank[rank] if self.file_of_rank else 0
        sample: list[tuple] = []  # max-heap on the draw: (-draw, order, text, kind, line hashes)
        count = 0
        for batch in batched(data, self.batch_size):
            t0 = time.perf_counter()
            words = word_hashes_many([doc.text for doc in batch])
            exact = np.array([exact_hash(doc.text) for doc in batch], dtype=np.uint64)
            orders = np.array(
                [order_key(file_number, doc.metadata.get("_row", 0)) for doc in batch], dtype=np.uint64
            )
            buckets.add(exact, hasher.signatures(words), orders)
            t1 = time.perf_counter()
            if index is not None:
                for doc, hits in zip(batch, index.matches_many(words)):
                    doc.metadata["_contamination"] = contamination_of(hits, self.decontam)
            t2 = time.perf_counter()
            for doc, order in zip(batch, orders.tolist()):
                doc.metadata["_order"] = order
                doc.metadata["_kind"] = guess_domain(doc)
                doc.metadata["_program"] = self.programs and is_program(
                    doc.text, lambda d=doc: parses_cached(d)
                )
            if self.sample_docs:
                for doc, order, draw in zip(batch, orders.tolist(), sample_hash(orders).tolist()):
                    if len(sample) < self.sample_docs or -sample[0][0] > draw:
                        text = (
                            normalize(doc.text, self.recall.max_tokens_per_doc, self.recall.windows)
                            if self.recall is not None
                            else ""
                        )
                        lines = line_hashes(doc.text) if self.lines else np.zeros(0, dtype=np.uint64)
                        item = (-draw, order, text, doc.metadata["_kind"], lines)
                        (heapq.heappush if len(sample) < self.sample_docs else heapq.heapreplace)(
                            sample, item
                        )
            self.seconds["recall"] += time.perf_counter() - t2
            self.seconds["decontam"] += t2 - t1
            self.seconds["dedup"] += t1 - t0
            for name, records in (
                ("ids", [orjson.dumps(doc.id) + b"\n" for doc in batch]),
                (
                    "scan",
                    [
                        orjson.dumps(scan_record(doc), option=orjson.OPT_APPEND_NEWLINE, default=str)
                        for doc in batch
                    ],
                ),
            ):
                stream, offsets = outputs[name][:2]
                starts = np.cumsum([0] + [len(x) for x in records[:-1]], dtype=np.uint64) + np.uint64(
                    stream.tell()
                )
                starts.tofile(offsets)
                stream.write(b"".join(records))
            count += len(batch)
            yield from batch
        buckets.close()
        written = list(buckets.written) + [buckets.sigs_path]
        for stream, offsets, path, offsets_path in outputs.values():
            stream.close(), offsets.close()
            Path(offsets.name).replace(offsets_path)
            Path(stream.name).replace(path)
            written += [offsets_path, path]
        records = sorted(((-d, order, text, kind, lines) for d, order, text, kind, lines in sample))
        _atomic_bytes(
            work / "sample" / f"{rank:05d}.jsonl",
            lambda f: f.write(
                "".join(
                    json.dumps({"draw": d, "order": o, "text": t, "kind": k, "lines": li.tolist()}) + "\n"
                    for d, o, t, k, li in records
                ).encode()
            ),
        )
        _atomic_bytes(
            work / "scan" / f"{rank:05d}.meta.json",
            lambda f: f.write(json.dumps({"docs": count, "seconds": self.seconds}).encode()),
        )
        # before the task completes: the next stages may run on other nodes
        self.work.publish(
            *written, work / "sample" / f"{rank:05d}.jsonl", work / "scan" / f"{rank:05d}.meta.json"
        )


class ScanReader(PipelineStep):
    """Reads back shard `rank` of the scan, private metadata included."""

    name = "📖 scanned shard"
    type = "📖 - READER"

    def __init__(self, work: WorkFolder):
        super().__init__()
        self.work = work

    def run(self, data=None, rank: int = 0, world_size: int = 1) -> Iterator[Document]:
        import orjson

        path = self.work.fetch(f"scan/{rank:05d}.jsonl", missing_ok=True)
        if path is None:
            return
        with open(path, "rb") as f:
            for index, line in enumerate(f):
                record = orjson.loads(line)
                record["metadata"]["_index"] = index  # the document's row in the driver's decisions
                yield Document(text=record["text"], id=record["id"], metadata=record["metadata"])


class ScoreShard(PipelineStep):
    """The classifiers trained on the sample, applied to every document of one shard: writes the
    recall score per domain and the quality score (`scores/<rank>.f32`, one row per document) and
    the shard's pages and recalled pages per URL prefix, keyed by the prefix's hash, as a run
    sorted by it (`prefixes/<rank>.bin`, for expansion, see `select.expand_prefixes`)."""

    name = "🎯 score"
    type = "🎯 - CLASSIFY"
    batch_size = 256

    def __init__(self, work: WorkFolder, recall: RecallConfig, domains: list[str], quality: bool):
        super().__init__()
        self.work, self.recall, self.domains, self.quality = work, recall, domains, quality

    def run(self, data, rank: int = 0, world_size: int = 1):
        from fasttext.FastText import _FastText

        from infir.curate.recall.classifier import distribution, label_probabilities
        from infir.curate.filters.quality import expected_score
        from infir.curate.recall.domains import url_prefix

        work = self.work.local
        models = {}
        for d in self.domains:
            path = self.work.fetch(f"recall_{d}.bin", missing_ok=True)
            if path is not None:
                models[d] = _FastText(model_path=str(path))
        path = self.work.fetch("quality.bin", missing_ok=True) if self.quality else None
        quality = _FastText(model_path=str(path)) if path is not None else None
        prefixes: dict[int, list[int]] = {}
        columns = len(self.domains) + 1
        (work / "scores").mkdir(parents=True, exist_ok=True)
        path = work / "scores" / f"{rank:05d}.f32"
        t0 = time.perf_counter()
        with open(path.with_name(path.name + ".tmp"), "wb") as out:
            for batch in batched(data or (), self.batch_size):
                texts = [
                    normalize(doc.text, self.recall.max_tokens_per_doc, self.recall.windows) for doc in batch
                ]
                block = np.zeros((len(batch), columns), dtype=np.float32)
                for k, d in enumerate(self.domains):
                    if d in models:
                        block[:, k] = label_probabilities(models[d], texts, "pos")
                if quality is not None:
                    block[:, -1] = [expected_score(distribution(quality, t)) for t in texts]
                block.tofile(out)
                for doc, row in zip(batch, block):
                    prefix = url_prefix(doc.metadata.get("url"), self.recall.url_prefix_depth)
                    if prefix:
                        counts = prefixes.setdefault(prefix_hash(prefix), [0] * columns)
                        counts[0] += 1
                        for k in range(len(self.domains)):
                            counts[k + 1] += int(row[k] >= self.recall.threshold)
        path.with_name(path.name + ".tmp").replace(path)
        from infir.curate.dedup.stages import write_run

        (work / "prefixes").mkdir(parents=True, exist_ok=True)
        rows = np.zeros(len(prefixes), dtype=prefix_dtype(columns))
        if prefixes:
            rows["hash"] = np.fromiter(prefixes, dtype=np.uint64, count=len(prefixes))
            rows["counts"] = np.array(list(prefixes.values()), dtype=np.int64)
        runs = write_run(work / "prefixes" / f"{rank:05d}.bin", rows, "hash", suffix=".tmp")
        for path in runs:
            path.with_name(path.name + ".tmp").replace(path)
        _atomic_bytes(
            work / "prefixes" / f"{rank:05d}.json",
            lambda f: f.write(
                json.dumps({"prefixes": len(prefixes), "seconds": time.perf_counter() - t0}).encode()
            ),
        )
        self.work.publish(work / "scores" / f"{rank:05d}.f32", *runs, work / "prefixes" / f"{rank:05d}.json")
        return iter(())


def prefix_hash(prefix: str) -> int:
    import xxhash

    return xxhash.xxh3_64_intdigest(prefix.encode("utf-8", "surrogatepass"))


def prefix_dtype(columns: int) -> np.dtype:
    """A URL prefix's row: its hash, its pages and, per recall domain, its recalled pages."""
    return np.dtype([("hash", "<u8"), ("counts", "<i8", (columns,))])


def load_scores(work: WorkFolder, rank: int, columns: int) -> np.ndarray:
    path = work.fetch(f"scores/{rank:05d}.f32", missing_ok=True)
    if path is None:
        return np.zeros((0, columns), dtype=np.float32)
    return np.fromfile(path, dtype=np.float32).reshape(-1, columns)


class ApplyRecall(CurateStep):
    """Writes the recall verdict (domain and per-domain scores) on each document; drops nothing.
    A document belongs to a domain when its score passes the threshold, or the lower expansion
    threshold on a URL prefix the driver expanded; code must also be a program. Without recall,
    the rule-based guess decides."""

    name = "🎯 recall"
    step_name = "recall"

    def __init__(self, work: WorkFolder, cfg: RecallConfig):
        super().__init__(None)
        self.work, self.cfg = work, cfg

    def setup(self, rank: int, world_size: int) -> None:
        self._scores = load_scores(self.work, rank, len(self.cfg.domains) + 1) if self.cfg.enabled else None
        files = {d: self.work.fetch(f"decisions/expand_{d}.u64", missing_ok=True) for d in self.cfg.domains}
        self._expanded = {
            d: np.fromfile(path, dtype=np.uint64) for d, path in files.items() if path is not None
        }

    def _expanded_in(self, domain: str, prefix: str | None) -> bool:
        hashes = self._expanded.get(domain)
        if prefix is None or hashes is None or not len(hashes):
            return False
        h = np.uint64(prefix_hash(prefix))
        i = int(np.searchsorted(hashes, h))
        return i < len(hashes) and hashes[i] == h

    def filter(self, doc: Document) -> bool:
        from infir.curate.recall.domains import url_prefix

        i = doc.metadata["_index"]
        cfg = self.cfg
        if not cfg.enabled:
            kind = doc.metadata.get("_kind")
            doc.metadata["domain"] = kind if kind in ("math", "code") else "web"
            return True
        scores = {d: round(float(self._scores[i, k]), 4) for k, d in enumerate(cfg.domains)}
        prefix = url_prefix(doc.metadata.get("url"), cfg.url_prefix_depth)
        best, best_score = "web", -1.0
        for k, d in enumerate(cfg.domains):
            s = float(self._scores[i, k])
            recalled = s >= cfg.threshold or (s >= cfg.expand_threshold and self._expanded_in(d, prefix))
            if d == "code" and cfg.code_requires_program and not doc.metadata.get("_program"):
                recalled = False
            if recalled and s > best_score:
                best, best_score = d, s
        doc.metadata["domain"] = best
        doc.metadata["recall_scores"] = scores
        return True


class ApplyDedup(CurateStep):
    name = "👯 dedup"
    step_name = "dedup"

    def __init__(self, work: WorkFolder, removed_dir: str | None = None):
        super().__init__(removed_dir)
        self.work = work

    def setup(self, rank: int, world_size: int) -> None:
        path = self.work.fetch(f"decisions/dedup/{rank:05d}.json", missing_ok=True)
        data = json.loads(path.read_text()) if path is not None else {"rows": [], "keeper": [], "reason": []}
        self._dups = {
            row: (keeper, reason) for row, keeper, reason in zip(data["rows"], data["keeper"], data["reason"])
        }

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        entry = self._dups.get(doc.metadata["_index"])
        if entry is None:
            return True
        doc.metadata["duplicate_of"] = entry[0]
        return False, entry[1]
