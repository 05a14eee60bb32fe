"""Reading curated documents: JSONL, gzipped JSONL and Parquet, with errors that name file and line.

A curated document is `{"id", "text", "url", "metadata": {"domain", ...}}`; only `text` is required
(the domain defaults to the stage's `default_domain`, the id to a hash of the text).
Records come out raw with their size, so the sharding loop can skip already-done shards without
parsing them.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infir.jsonl import JsonlError, parse_object

SUFFIXES = (".jsonl", ".jsonl.gz", ".json.gz", ".parquet")


class InputError(ValueError):
    """Malformed input; the message starts with `path:line`."""


@dataclass(frozen=True)
class Doc:
    id: str
    text: str
    domain: str


def find_inputs(folder: Path) -> list[Path]:
    files = sorted(p for p in Path(folder).rglob("*") if p.is_file() and p.name.endswith(SUFFIXES))
    if not files:
        raise FileNotFoundError(f"{folder}: no curated documents ({', '.join('*' + s for s in SUFFIXES)})")
    return files


class RecordReader:
    """Iterates `(line_number, size_in_bytes, payload)` of a file; `position` is on-disk bytes read."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.size = self.path.stat().st_size
        self._raw = None
        self._parquet_done = 0

    @property
    def position(self) -> int:
        if self._raw is not None and not self._raw.closed:
            return self._raw.tell()
        return self._parquet_done

    def __iter__(self) -> Iterator[tuple[int, int, Any]]:
        if self.path.name.endswith(".parquet"):
            yield from self._parquet()
            return
        with self.path.open("rb") as raw:
            self._raw = raw
            stream = gzip.GzipFile(fileobj=raw) if self.path.name.endswith(".gz") else raw
            try:
                for lineno, line in enumerate(stream, 1):
                    if line.strip():
                        yield lineno, len(line), line
            except (OSError, EOFError) as e:  # gzip.BadGzipFile is an OSError
                raise InputError(f"{self.path}: unreadable compressed input ({e})") from e
        self._raw = None

    def _parquet(self) -> Iterator[tuple[int, int, Any]]:
        try:
            import pyarrow.parquet as pq
        except ImportError as e:
            raise ImportError("reading Parquet needs pyarrow: pip install 'infir[web]'") from e
        pf = pq.ParquetFile(self.path)
        columns = [c for c in ("id", "text", "metadata", "domain") if c in pf.schema_arrow.names]
        if "text" not in columns:
            raise InputError(
                f"{self.path}: Parquet file has no 'text' column (columns: {pf.schema_arrow.names})"
            )
        total_rows = max(pf.metadata.num_rows, 1)
        row = 0
        for batch in pf.iter_batches(columns=columns, batch_size=1024):
            for record in batch.to_pylist():
                row += 1
                text = record.get("text")
                yield row, len(text.encode("utf-8")) if isinstance(text, str) else 0, record
            self._parquet_done = int(self.size * row / total_rows)


def parse_record(path: Path, lineno: int, payload: Any, default_domain: str) -> Doc:
    if not isinstance(payload, dict):  # a JSONL line; Parquet rows come as dicts
        try:
            payload = parse_object(payload, f"{path}:{lineno}")
        except JsonlError as e:
            raise InputError(str(e)) from e
    text = payload.get("text")
    if not isinstance(text, str):
        raise InputError(f"{path}:{lineno}: field 'text' is missing or not a string")
    metadata = payload.get("metadata") or {}
    if isinstance(metadata, str):  # Parquet writers may store metadata as a JSON string
        try:
            metadata = json.loads(metadata)
        except json.JSONDecodeError as e:
            raise InputError(f"{path}:{lineno}: field 'metadata' is not a JSON object") from e
    if not isinstance(metadata, dict):
        raise InputError(f"{path}:{lineno}: field 'metadata' must be an object")
    domain = metadata.get("domain") or payload.get("domain") or default_domain
    if not isinstance(domain, str) or not domain.replace("_", "").replace("-", "").isalnum():
        raise InputError(
            f"{path}:{lineno}: field 'metadata.domain' must be a name of letters, digits, "
            f"- or _, got {domain!r}"
        )
    doc_id = payload.get("id")
    return Doc(id=str(doc_id) if doc_id is not None else "", text=text, domain=domain)
