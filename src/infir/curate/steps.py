"""The base of every infir curation step: a datatrove filter that also keeps the funnel's books.

Each step counts docs and approximate tokens in and out, drops by reason and its own seconds, and
writes dropped documents (with `removed_by` and `reason` in metadata) to `removed/<step>/`. The
last step of a shard's pipeline, `ShardStats`, saves those books per rank so the driver can add
them up; with them, every step satisfies docs in = docs out + dropped by construction.
"""

from __future__ import annotations

import itertools
import json
import time
from collections import Counter
from typing import Iterator

from datatrove.data import Document
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.filters.base_filter import BaseFilter
from datatrove.pipeline.writers.jsonl import JsonlWriter


def batched(items, size: int) -> Iterator[list]:
    """Lists of `size` items (the last may be shorter); itertools.batched is Python >= 3.12."""
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


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


def _register_fast_gzip() -> str:
    """gzip at level 3 for our outputs: fsspec's gzip writes at level 9, three times slower for
    files a few percent smaller. Registered at import, so every worker (fork, spawn, Ray) has it."""
    import gzip

    from fsspec.compression import compr, register_compression

    if FAST_GZIP not in compr:
        register_compression(
            FAST_GZIP, lambda f, mode="rb", **kw: gzip.GzipFile(fileobj=f, mode=mode, compresslevel=3), []
        )
    return FAST_GZIP


FAST_GZIP = "infir-gzip3"
_register_fast_gzip()


def gzip_writer(folder: str, filename: str) -> JsonlWriter:
    """A `.jsonl.gz` writer of output records."""
    return JsonlWriter(folder, output_filename=filename, adapter=output_adapter, compression=FAST_GZIP)


def removed_writer(output_dir: str | None, step: str) -> JsonlWriter | None:
    if output_dir is None:
        return None
    return gzip_writer(f"{output_dir}/removed/{step}", "${rank}.jsonl.gz")


class CurateStep(BaseFilter):
    """`filter(doc)` returns True to keep, or (False, reason); it may rewrite the document.
    Steps that work faster on many documents at once (one numpy pass for a whole batch) set
    `batch_size` and override `filter_batch` instead."""

    type = "🧪 - INFIR"
    step_name = "step"
    tokens_per_word = 1.3
    batch_size = 1

    def __init__(self, removed_dir: str | None = None):
        # datatrove's BaseFilter keeps `batch_size` on the instance: hand it the class's value
        super().__init__(
            exclusion_writer=removed_writer(removed_dir, self.step_name), batch_size=type(self).batch_size
        )
        self.books = {
            "name": self.step_name,
            "docs_in": 0,
            "docs_out": 0,
            "words_in": 0,
            "words_out": 0,
            "dropped": Counter(),
            "seconds": 0.0,
        }

    def setup(self, rank: int, world_size: int) -> None:
        """Per-task preparation (load a model, read decisions) done inside the worker."""

    def filter_batch(self, docs: list[Document]) -> list[bool | tuple[bool, str]]:
        return [self.filter(doc) for doc in docs]

    def run(self, data, rank: int = 0, world_size: int = 1) -> Iterator[Document]:
        t0 = time.perf_counter()
        self.setup(rank, world_size)
        self.books["seconds"] += time.perf_counter() - t0
        writer = self.exclusion_writer
        books = self.books
        try:
            for batch in batched(data, self.batch_size):
                words_in = [word_count(doc) for doc in batch]
                t0 = time.perf_counter()
                results = self.filter_batch(batch)
                books["seconds"] += time.perf_counter() - t0
                books["docs_in"] += len(batch)
                books["words_in"] += sum(words_in)
                for doc, result in zip(batch, results):
                    keep, reason = (result, None) if not isinstance(result, tuple) else result
                    if keep:
                        books["docs_out"] += 1
                        books["words_out"] += word_count(doc)
                        yield doc
                        continue
                    reason = reason or "dropped"
                    books["dropped"][reason] += 1
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

    def __init__(self, steps: list[CurateStep], work, stats_dir: str):
        """`work`: the run's `WorkFolder`; `stats_dir`: the folder in it."""
        super().__init__()
        self.steps = steps
        self.work, self.stats_dir = work, stats_dir

    def run(self, data, rank: int = 0, world_size: int = 1):
        t0 = time.perf_counter()
        for _ in data or ():
            pass
        books = [dict(s.books, dropped=dict(s.books["dropped"])) for s in self.steps]
        self.work.write_text(
            f"{self.stats_dir}/{rank:05d}.json",
            json.dumps({"rank": rank, "wall_seconds": time.perf_counter() - t0, "steps": books}),
        )
        return iter(())
