"""Seeded reservoir sampling over records streamed through Hugging Face `datasets`.

Every source, hub or local, goes through `datasets.load_dataset(..., streaming=True)`: one reader for
OpenWebMath's `text` rows, StackOverflow-style Q&A columns and local JSONL/Parquet, nothing loaded
whole. Algorithm R keeps `size` records whatever the stream's length; with the same seed and the same
stream the same records come out, written in stream order.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from infir.inputs.config import DatasetSource, SampleSpec

_BUILDERS = {".parquet": "parquet", ".jsonl": "json", ".json": "json", ".ndjson": "json"}
_COMPRESSED = (".gz", ".bz2", ".xz", ".zst", ".lz4")


def builder_for(paths: list[str]) -> str:
    kinds = set()
    for p in paths:
        name = p.lower()
        for ext in _COMPRESSED:
            name = name.removesuffix(ext)
        kind = _BUILDERS.get(os.path.splitext(name)[1])
        if kind is None:
            raise ValueError(f"{p}: not a JSONL, JSON or Parquet file (by its extension)")
        kinds.add(kind)
    if len(kinds) > 1:
        raise ValueError(f"one source mixes file formats ({sorted(kinds)}): give each format its own source")
    return kinds.pop()


def open_stream(src: DatasetSource, seed: int = 0):
    import datasets

    if src.paths:
        stream = datasets.load_dataset(
            builder_for(src.paths), data_files=list(src.paths), split="train", streaming=True
        )
    else:
        stream = datasets.load_dataset(src.name, src.subset, split=src.split, streaming=True)
    if src.shuffle_files:
        # one file at a time and a buffer of one: the files' order is shuffled, records stay in file order
        stream = stream.shuffle(seed=seed, buffer_size=1, max_buffer_input_shards=1)
    return stream


def iter_texts(src: DatasetSource, seed: int = 0) -> Iterator[str]:
    """The source's texts, in stream order, at most `scan` records read."""
    fields = src.fields()
    stream = open_stream(src, seed)
    missing_checked = False
    for n, record in enumerate(stream):
        if src.scan is not None and n >= src.scan:
            return
        if not missing_checked:
            absent = [f for f in fields if f not in record]
            if absent:
                raise KeyError(
                    f"source {src.label}: records have no field(s) {absent}; they have "
                    f"{sorted(record)} (set `text_key` or `template`)"
                )
            missing_checked = True
        if any(not record[f] for f in src.require):
            continue
        if src.template is None:
            text = as_text(record[src.text_key])
        else:
            text = src.template.format_map({f: as_text(record[f]) for f in fields})
        if isinstance(text, str) and len(text.strip()) >= src.min_chars:
            yield text


def as_text(value) -> str:
    """A field as text. Interleaved documents (InfiMM-WebMath's `text_list`, None where an image stood)
    are their text segments joined by blank lines."""
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return "\n\n".join(v for v in value if isinstance(v, str) and v.strip())
    return value if isinstance(value, str) else str(value)


@dataclass
class Reservoir:
    size: int
    seed: int
    seen: int = 0
    items: list[tuple[int, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def add(self, text: str) -> None:
        if len(self.items) < self.size:
            self.items.append((self.seen, text))
        else:
            j = self._rng.randrange(self.seen + 1)
            if j < self.size:
                self.items[j] = (self.seen, text)
        self.seen += 1

    def sample(self) -> list[str]:
        return [text for _, text in sorted(self.items)]


def draw(spec: SampleSpec) -> tuple[list[str], dict]:
    """`spec.size` texts drawn uniformly from all sources together, and how many texts each source gave."""
    reservoir = Reservoir(spec.size, spec.seed)
    per_source = {}
    for src in spec.sources:
        before = reservoir.seen
        for text in iter_texts(src, spec.seed):
            reservoir.add(text)
        per_source[src.label] = reservoir.seen - before
    return reservoir.sample(), {"texts_per_source": per_source, "seen": reservoir.seen}


def write_jsonl_atomic(path: str | Path, records) -> str:
    """Writes records to a temporary file beside `path`, then renames: a kill leaves the old file or none.
    Returns the sha256 of what was written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    digest = hashlib.sha256()
    with tmp.open("w", encoding="utf-8") as f:
        for record in records:
            line = json.dumps(record, ensure_ascii=False) + "\n"
            digest.update(line.encode())
            f.write(line)
    os.replace(tmp, path)
    return digest.hexdigest()


def file_sha256(path: str | Path) -> str | None:
    path = Path(path)
    if not path.is_file():
        return None
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
