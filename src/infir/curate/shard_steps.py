"""Steps that carry documents between the parallel stages and the driver.

`Featurize` closes the scan: it keeps, per shard and in order, what the global steps need
(classifier text, exact hash, MinHash signature, URL, rule-based kind, whether it is a program).
`ScanReader` reopens a scanned shard for the finishing stage, and `ApplyRecall` / `ApplyDedup` apply the driver's decisions.
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
from infir.curate.dedup import MinHasher, exact_hash
from infir.curate.hashing import word_hashes_many
from infir.curate.fasttext_utils import normalize
from infir.curate.filters.domain_guess import guess_domain, parses_cached
from infir.curate.filters.rules import is_program
from infir.curate.steps import CurateStep, batched


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


class Featurize(PipelineStep):
    """Computes, a batch of documents at a time, what the global steps need: word hashes once
    (shared by the MinHash signatures and the benchmark n-gram lookup), exact hashes, recall text."""

    name = "🧬 featurize"
    type = "🧬 - FEATURES"
    batch_size = 256

    def __init__(self, dedup: DedupConfig, recall: RecallConfig | None, scan_dir: str,
                 decontam: DecontamConfig | None = None, decontam_index: str | None = None,
                 programs: bool = False, file_of_rank: list[int] | None = None):
        super().__init__()
        self.file_of_rank = file_of_rank  # the input file each shard reads, numbered in plan order
        self.dedup = dedup
        self.recall = recall  # its text settings; None: no classifier needs the text
        self.programs = programs  # whether recall needs to know which documents are programs
        self.scan_dir = scan_dir
        self.decontam = decontam
        self.decontam_index = decontam_index
        self.seconds = {"dedup": 0.0, "recall": 0.0, "decontam": 0.0}

    def run(self, data, rank: int = 0, world_size: int = 1) -> Iterator[Document]:
        from infir.curate.decontam import DecontamIndex, contamination_of

        hasher = MinHasher(self.dedup)
        index = DecontamIndex(self.decontam_index) if self.decontam_index else None
        exact, sigs, texts, meta = [], [], [], []
        for batch in batched(data, self.batch_size):
            t0 = time.perf_counter()
            words = word_hashes_many([doc.text for doc in batch])
            exact += [exact_hash(doc.text) for doc in batch]
            sigs.append(hasher.signatures(words))
            t1 = time.perf_counter()
            if index is not None:
                for doc, hits in zip(batch, index.matches_many(words)):
                    doc.metadata["_contamination"] = contamination_of(hits, self.decontam)
            t2 = time.perf_counter()
            if self.recall is not None:
                texts += [normalize(doc.text, self.recall.max_tokens_per_doc, self.recall.windows) for doc in batch]
            self.seconds["recall"] += time.perf_counter() - t2
            self.seconds["decontam"] += t2 - t1
            self.seconds["dedup"] += t1 - t0
            meta += [{"id": doc.id, "order": order_key(self.file_of_rank[rank] if self.file_of_rank else 0,
                                                       doc.metadata.get("_row", 0)),
                      "url": doc.metadata.get("url"), "kind": guess_domain(doc),
                      "program": self.programs and is_program(doc.text, lambda d=doc: parses_cached(d))}
                     for doc in batch]
            yield from batch
        out = Path(self.scan_dir)
        out.mkdir(parents=True, exist_ok=True)
        sig_array = np.concatenate(sigs) if sigs else np.zeros((0, hasher.num_perm), dtype=np.uint32)
        _atomic_bytes(out / f"{rank:05d}.npz",
                      lambda f: np.savez(f, exact=np.array(exact, dtype=np.uint64), sigs=sig_array))
        _atomic_bytes(out / f"{rank:05d}.recall.txt", lambda f: f.write("".join(t + "\n" for t in texts).encode()))
        _atomic_bytes(out / f"{rank:05d}.meta.json", lambda f: f.write(json.dumps(
            {"docs": meta, "seconds": self.seconds}).encode()))


class ScanReader(PipelineStep):
    """Reads back shard `rank` of the scan, private metadata included."""

    name = "📖 scanned shard"
    type = "📖 - READER"

    def __init__(self, scan_dir: str):
        super().__init__()
        self.scan_dir = scan_dir

    def run(self, data=None, rank: int = 0, world_size: int = 1) -> Iterator[Document]:
        import orjson

        path = Path(self.scan_dir) / f"{rank:05d}.jsonl"
        if not path.exists():
            return
        with open(path, "rb") as f:
            for index, line in enumerate(f):
                record = orjson.loads(line)
                record["metadata"]["_index"] = index  # the document's row in the driver's decisions
                yield Document(text=record["text"], id=record["id"], metadata=record["metadata"])


def load_decisions(decisions_dir: str, rank: int) -> dict:
    return json.loads((Path(decisions_dir) / f"{rank:05d}.json").read_text())


class ApplyRecall(CurateStep):
    """Writes the recall verdict (domain and per-domain scores) on each document; drops nothing."""

    name = "🎯 recall"
    step_name = "recall"

    def __init__(self, decisions_dir: str):
        super().__init__(None)
        self.decisions_dir = decisions_dir

    def setup(self, rank: int, world_size: int) -> None:
        self._decisions = load_decisions(self.decisions_dir, rank)

    def filter(self, doc: Document) -> bool:
        i = doc.metadata["_index"]
        doc.metadata["domain"] = self._decisions["domain"][i]
        doc.metadata["recall_scores"] = {d: s[i] for d, s in self._decisions["scores"].items()}
        return True


class ApplyDedup(CurateStep):
    name = "👯 dedup"
    step_name = "dedup"

    def __init__(self, decisions_dir: str, removed_dir: str | None = None):
        super().__init__(removed_dir)
        self.decisions_dir = decisions_dir

    def setup(self, rank: int, world_size: int) -> None:
        self._dups = load_decisions(self.decisions_dir, rank)["dups"]

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        entry = self._dups.get(str(doc.metadata["_index"]))
        if entry is None:
            return True
        doc.metadata["duplicate_of"] = entry[0]
        return False, entry[1]
