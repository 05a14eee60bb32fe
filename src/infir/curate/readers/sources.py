"""Inputs: plan shards over the configured sources and read one shard as datatrove Documents.

datatrove's readers give one worker per file; a corpus that arrives as one large file would then
run on one core. Here a shard is a part of one input that a task reads without touching the rest:
- plain JSON Lines: a byte range; the task seeks to it and reads the lines that start inside it
  (`readers/jsonl.py`), so every line is read by exactly one task;
- Parquet: a run of row groups, read through pyarrow with the file's footer (`readers/parquet.py`);
- compressed files (.gz, .zst, .bz2, .xz, ...) and WARC files: one task per file, since a
  compressed stream can only be read from its start;
- Hugging Face datasets: a run of the dataset's own files (`readers/hf.py`); a dataset with fewer
  files than tasks gets one task per file;
- builtin corpora: every `parts`-th record of the generator (each task runs the generator).
Files are given tasks in proportion to their size; a file or dataset source with a `limit` is
read by one task per file (dataset), which stops after `limit` records. File and dataset shards
are contiguous and in input order, so the concatenated shards are the input in its order whatever
the number of tasks (dedup keeps the first copy in that order), and ids (the record's own, else
its byte offset, row, or file and row) do not depend on the split either.

Bad records never vanish: a malformed JSON line, invalid UTF-8, a missing or non-string text
field become Documents flagged with `metadata["_bad"]` and located as `path:line`, which the
`validate` step counts and writes aside. A file that cannot be read at all raises
`CurateInputError` naming the path.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Callable, Iterator

from datatrove.data import Document
from datatrove.pipeline.base import PipelineStep

from infir.curate.config import SourceConfig


class CurateInputError(RuntimeError):
    """An input that cannot be read at all (missing, corrupt, wrong format); the message names it."""


@dataclass(frozen=True)
class Shard:
    source: int  # index into the config's sources
    path: str | None  # None for hf / builtin sources
    part: int  # builtin sources: this shard keeps the records whose index % parts == part
    parts: int
    start: int = 0  # bytes (jsonl), row groups (parquet), files or rows (hf): [start, end)
    end: int | None = None  # None: to the end
    units: int | None = None  # hf: the dataset's files (rows) when planned; checked when read


def expand_paths(source: SourceConfig) -> list[str]:
    from fsspec.core import url_to_fs

    files: list[str] = []
    for pattern in source.paths:
        fs, path = url_to_fs(pattern)
        matches = (
            sorted(fs.glob(path)) if any(c in path for c in "*?[") else ([path] if fs.exists(path) else [])
        )
        if not matches:
            raise CurateInputError(f"input not found: {pattern}")
        protocol = fs.protocol[0] if isinstance(fs.protocol, (tuple, list)) else fs.protocol
        files += [m if protocol in ("file", "local") else f"{protocol}://{m}" for m in matches]
    return files


def probe(path: str, kind: str) -> None:
    """Reads the head of one input file (decompressed), so an unreadable file fails with its path
    before any long work starts rather than halfway through the scan."""
    try:
        with _open_binary(path) as stream:
            if kind == "parquet":
                import pyarrow.parquet as pq

                pq.read_metadata(stream)
            elif kind == "warc":
                from warcio.archiveiterator import ArchiveIterator

                next(iter(ArchiveIterator(stream)), None)
            else:
                stream.read(1 << 16)
    except Exception as e:  # noqa: BLE001 - whatever the failure, it is reported with the path
        raise CurateInputError(f"cannot read {path}: {type(e).__name__}: {e}") from e


@dataclass
class _Unit:
    """One input file, dataset or generator, and how finely it can be split."""

    source: int
    path: str | None
    weight: float  # bytes for files; an average file's for datasets and generators
    split: Callable[[int], list[Shard]]  # parts wanted -> its shards


def plan_shards(sources: list[SourceConfig], tasks: int) -> list[Shard]:
    """Split every source into shards: about `tasks` of them, at least one per input unit."""
    units: list[_Unit] = []
    pending: list[tuple[int, SourceConfig]] = []
    for i, source in enumerate(sources):
        if source.type not in ("jsonl", "parquet", "warc"):
            pending.append((i, source))
            continue
        for path in expand_paths(source):
            probe(path, source.type)
            units.append(_file_unit(i, source, path))
    mean_file = sum(u.weight for u in units) / len(units) if units else 1.0
    units += [_Unit(i, None, mean_file, _dataset_splitter(i, source)) for i, source in pending]
    total = sum(u.weight for u in units) or 1.0
    shards: list[Shard] = []
    for unit in units:
        shards += unit.split(max(1, math.ceil(tasks * unit.weight / total)))
    return shards


def _file_unit(i: int, source: SourceConfig, path: str) -> _Unit:
    from infir.curate.readers import files

    size = files.file_size(path)
    whole = source.limit is not None or source.type == "warc" or files.is_compressed(path)
    if whole:
        return _Unit(i, path, size, lambda parts: [Shard(i, path, 0, 1)])
    if source.type == "jsonl":
        from infir.curate.readers.jsonl import split_ranges

        return _Unit(
            i,
            path,
            size,
            lambda parts: [
                Shard(i, path, k, parts_, a, b) for k, (a, b), parts_ in _numbered(split_ranges(size, parts))
            ],
        )
    from infir.curate.readers.parquet import row_group_rows, split_row_groups

    rows = row_group_rows(path)
    return _Unit(
        i,
        path,
        size,
        lambda parts: [
            Shard(i, path, k, parts_, a, b) for k, (a, b), parts_ in _numbered(split_row_groups(rows, parts))
        ],
    )


def _dataset_splitter(i: int, source: SourceConfig) -> Callable[[int], list[Shard]]:
    if source.type == "builtin":  # each task runs the generator, keeping every `parts`-th record
        return lambda parts: [Shard(i, None, k, parts) for k in range(parts)]

    def split(parts: int) -> list[Shard]:
        from infir.curate.readers import hf

        try:
            ranges, units = hf.plan(
                source.name, source.subset, source.split, 1 if source.limit is not None else parts
            )
        except Exception as e:  # noqa: BLE001 - a dataset that cannot be opened fails with its name
            raise CurateInputError(f"cannot read the dataset {source.name}: {type(e).__name__}: {e}") from e
        return [Shard(i, None, k, n, a, b, units) for k, (a, b), n in _numbered(ranges)]

    return split


def _numbered(ranges: list[tuple[int, int]]):
    return [(k, r, len(ranges)) for k, r in enumerate(ranges)]


def _open_binary(path: str):
    from infir.curate.readers import files

    return files.open_binary(path)


def _bad(reason: str, raw: str, where: str) -> Document:
    return Document(text=raw, id=where, metadata={"_bad": reason, "_where": where})


class ShardReader(PipelineStep):
    """Reads shard `rank` of a plan; yields Documents with `url`, `source` and the domain hint in metadata.

    Each Document's `_row` is its place in its file (a JSONL line's byte offset, a Parquet or dataset
    row, a WARC record's number): with the file's number, an input order no shard plan changes, which
    every order-dependent decision (the copy dedup keeps, the classifier samples) follows.
    """

    name = "📖 infir reader"
    type = "📖 - READER"

    def __init__(self, sources: list[SourceConfig], shards: list[Shard]):
        super().__init__()
        self.sources = sources
        self.shards = shards

    def run(self, data=None, rank: int = 0, world_size: int = 1) -> Iterator[Document]:
        shard = self.shards[rank]
        source = self.sources[shard.source]
        reader = {
            "jsonl": self._jsonl,
            "parquet": self._parquet,
            "warc": self._warc,
            "hf": self._hf,
            "builtin": self._builtin,
        }[source.type]
        for j, doc in enumerate(reader(source, shard)):
            if source.type == "builtin":  # dealt round-robin: record j of part p is record p + j * parts
                doc.metadata["_row"] = shard.part + j * shard.parts
            doc.metadata.setdefault("source", source.label())
            if source.domain:
                doc.metadata["domain_hint"] = source.domain
            yield doc

    def _mine(self, index: int, shard: Shard) -> bool:
        return index % shard.parts == shard.part

    def _from_record(self, record: dict, source: SourceConfig, where: str) -> Document:
        text = record.get(source.text_key)
        if not isinstance(text, str):
            why = "missing_text" if text is None else "text_not_a_string"
            return _bad(why, json.dumps(record, ensure_ascii=False, default=str), where)
        doc_id = record.get(source.id_key)
        meta = {k: v for k, v in record.items() if k not in (source.text_key, source.id_key, "metadata")}
        if isinstance(record.get("metadata"), dict):
            meta.update(record["metadata"])
        if source.url_key != "url" and source.url_key in meta:
            meta["url"] = meta.pop(source.url_key)
        if "domain" in meta:  # an input's own domain label is a hint; recall assigns `domain`
            meta["domain_hint"] = meta.pop("domain")
        return Document(text=text, id=str(doc_id) if doc_id is not None else where, metadata=meta)

    def _jsonl(self, source: SourceConfig, shard: Shard) -> Iterator[Document]:
        from infir.curate.readers.jsonl import LineNumbers, iter_lines

        path = shard.path
        numbers = LineNumbers(path, shard.start)
        first = None
        try:
            for index, (offset, raw) in enumerate(iter_lines(path, shard.start, shard.end)):
                if source.limit is not None and index >= source.limit:
                    break
                first = offset if first is None else first

                def where() -> str:
                    return f"{path}:{numbers.number(index, first)}"

                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError:
                    yield _bad("invalid_utf8", raw.decode("utf-8", errors="replace"), where())
                    continue
                if not line.strip():
                    yield _bad("empty_line", line, where())
                    continue
                try:
                    record = json.loads(line)
                except ValueError:
                    yield _bad("malformed_json", line.rstrip("\r\n"), where())
                    continue
                if not isinstance(record, dict):
                    yield _bad("not_an_object", line.rstrip("\r\n"), where())
                    continue
                doc = self._from_record(record, source, f"{path}:byte{offset}")
                if doc.metadata.get("_bad"):  # a located record is reported by its line
                    doc.metadata["_where"] = doc.id = where()
                doc.metadata["_row"] = offset
                yield doc
        except CurateInputError:
            raise
        except Exception as e:  # noqa: BLE001 - missing, truncated, corrupt (gzip, zstd, ...): named by path
            raise CurateInputError(f"cannot read {path}: {type(e).__name__}: {e}") from e

    def _parquet(self, source: SourceConfig, shard: Shard) -> Iterator[Document]:
        from infir.curate.readers.parquet import iter_rows

        path = shard.path
        try:
            rows = iter_rows(path, shard.start, shard.end)
            for index, record in rows:
                if source.limit is not None and index >= source.limit:
                    return
                doc = self._from_record(record, source, f"{path}:row{index}")
                doc.metadata["_row"] = index
                yield doc
        except Exception as e:  # noqa: BLE001 - an unreadable file is reported with its path
            raise CurateInputError(f"cannot read {path}: {type(e).__name__}: {e}") from e

    def _warc(self, source: SourceConfig, shard: Shard) -> Iterator[Document]:
        import trafilatura
        from warcio.archiveiterator import ArchiveIterator

        path = shard.path
        try:
            stream = _open_binary(path)
            records = ArchiveIterator(stream)
        except Exception as e:  # noqa: BLE001
            raise CurateInputError(f"cannot read {path}: {e}") from e
        index = 0
        for record in records:
            if record.rec_type != "response":
                continue
            ctype = (record.http_headers.get_header("Content-Type") or "") if record.http_headers else ""
            if "html" not in ctype.lower():
                continue
            if source.limit is not None and index >= source.limit:
                return
            url = record.rec_headers.get_header("WARC-Target-URI")
            where = f"{path}:record{index}"
            index += 1
            html = record.content_stream().read().decode("utf-8", errors="replace")
            text = trafilatura.extract(html, url=url, include_comments=False) or ""
            doc_id = record.rec_headers.get_header("WARC-Record-ID") or where
            yield Document(
                text=text, id=doc_id.strip("<>"), metadata={"url": url, "_where": where, "_row": index}
            )

    def _hf(self, source: SourceConfig, shard: Shard) -> Iterator[Document]:
        """A dataset by hub name (streamed), a local folder of data files (parquet, jsonl, csv;
        `load_dataset` reads it offline), or a folder written by `Dataset.save_to_disk`."""
        from infir.curate.readers import hf

        records = hf.iter_records(
            source.name, source.subset, source.split, shard.start, shard.end, shard.units
        )
        try:
            for index, (position, order, record) in enumerate(records):
                if source.limit is not None and index >= source.limit:
                    return
                doc = self._from_record(dict(record), source, f"{source.name}:{position}")
                doc.metadata["_row"] = order
                yield doc
        except Exception as e:  # noqa: BLE001 - a dataset that cannot be read fails with its name
            raise CurateInputError(f"cannot read the dataset {source.name}: {type(e).__name__}: {e}") from e

    def _builtin(self, source: SourceConfig, shard: Shard) -> Iterator[Document]:
        from infir.curate.recall.seeds import iter_named

        for index, record in enumerate(iter_named(source.name, **source.kwargs)):
            if source.limit is not None and index >= source.limit:
                return
            if self._mine(index, shard):
                yield self._from_record(record, source, f"{source.name}:{index}")
