"""The base of every infir curation step: a datatrove filter that also keeps the funnel's books.

Each step counts docs and approximate tokens in and out, drops by reason and its own seconds, and
writes dropped documents (with `removed_by` and `reason` in metadata) to `removed/<step>/`. The
last step of a shard's pipeline, `ShardStats`, saves those books per rank so the driver can add
them up; with them, every step satisfies docs in = docs out + dropped by construction.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Iterator

from datatrove.data import Document
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.filters.base_filter import BaseFilter
from datatrove.pipeline.writers.jsonl import JsonlWriter


def word_count(doc: Document) -> int:
    n = doc.metadata.get("_words")
    if n is None:
        n = doc.metadata["_words"] = len(doc.text.split())
    return n


def set_text(doc: Document, text: str) -> None:
    """Steps that rewrite text (line cleaning, colon rule) keep the cached word count right."""
    doc.text = text
    doc.metadata["_words"] = len(text.split())


def output_record(doc: Document) -> dict:
    """The output contract: input id and url kept at the top level, our labels under metadata."""
    meta = {k: v for k, v in doc.metadata.items() if not k.startswith("_") and k != "url"}
    if "_where" in doc.metadata and doc.metadata.get("_bad"):
        meta["where"] = doc.metadata["_where"]
    return {"id": doc.id, "text": doc.text, "url": doc.metadata.get("url"), "metadata": meta}


def scan_record(doc: Document) -> dict:
    """Intermediate records keep every field, private ones included."""
    return {"id": doc.id, "text": doc.text, "metadata": doc.metadata}


def output_adapter(_writer, doc: Document) -> dict:
    return output_record(doc)


def scan_adapter(_writer, doc: Document) -> dict:
    return scan_record(doc)


def removed_writer(output_dir: str | None, step: str) -> JsonlWriter | None:
    if output_dir is None:
        return None
    return JsonlWriter(f"{output_dir}/removed/{step}", output_filename="${rank}.jsonl.gz",
                       adapter=output_adapter, compression="gzip")


class CurateStep(BaseFilter):
    """`filter(doc)` returns True to keep, or (False, reason); it may rewrite the document."""

    type = "🧪 - INFIR"
    step_name = "step"
    tokens_per_word = 1.3

    def __init__(self, removed_dir: str | None = None):
        super().__init__(exclusion_writer=removed_writer(removed_dir, self.step_name))
        self.books = {"name": self.step_name, "docs_in": 0, "docs_out": 0, "words_in": 0, "words_out": 0,
                      "dropped": Counter(), "seconds": 0.0}

    def setup(self, rank: int, world_size: int) -> None:
        """Per-task preparation (load a model, read decisions) done inside the worker."""

    def run(self, data, rank: int = 0, world_size: int = 1) -> Iterator[Document]:
        t0 = time.perf_counter()
        self.setup(rank, world_size)
        self.books["seconds"] += time.perf_counter() - t0
        writer = self.exclusion_writer
        try:
            for doc in data:
                words_in = word_count(doc)
                t0 = time.perf_counter()
                result = self.filter(doc)
                self.books["seconds"] += time.perf_counter() - t0
                self.books["docs_in"] += 1
                self.books["words_in"] += words_in
                keep, reason = (result, None) if not isinstance(result, tuple) else result
                if keep:
                    self.books["docs_out"] += 1
                    self.books["words_out"] += word_count(doc)
                    self.stat_update("forwarded")
                    yield doc
                    continue
                reason = reason or "dropped"
                self.books["dropped"][reason] += 1
                self.stat_update("dropped", f"dropped_{reason}")
                doc.metadata["removed_by"] = self.step_name
                doc.metadata["reason"] = reason
                if writer is not None:
                    writer.write(doc, rank)
        finally:
            if writer is not None:
                writer.close()


class Validate(CurateStep):
    """Bad input is counted under its reason and written aside, never silently skipped."""

    name = "🛂 validate"
    step_name = "validate"

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        bad = doc.metadata.get("_bad")
        if bad:
            return False, bad
        if not doc.text.strip():
            return False, "empty"
        return True


class ShardStats(PipelineStep):
    """Drains the pipeline, then saves the books of `steps` for this rank (read by the driver)."""

    name = "📒 shard books"
    type = "📒 - STATS"

    def __init__(self, steps: list[CurateStep], stats_dir: str):
        super().__init__()
        self.steps = steps
        self.stats_dir = stats_dir

    def run(self, data, rank: int = 0, world_size: int = 1):
        t0 = time.perf_counter()
        for _ in data or ():
            pass
        books = [dict(s.books, dropped=dict(s.books["dropped"])) for s in self.steps]
        path = Path(self.stats_dir) / f"{rank:05d}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"rank": rank, "wall_seconds": time.perf_counter() - t0, "steps": books}))
        tmp.replace(path)
        return iter(())
