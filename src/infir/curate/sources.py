"""Inputs: plan shards over the configured sources and read one shard as datatrove Documents.

datatrove's readers give one worker per file; a corpus that arrives as one large file would then
run on one core. Here a shard is (source, file, part): when there are fewer files than tasks,
each file is read by several tasks, each keeping every `parts`-th record. Record order within a
shard is the file's order, so a shard's output never depends on how many workers ran.

Bad records never vanish: a malformed JSON line, invalid UTF-8, a missing or non-string text
field become Documents flagged with `metadata["_bad"]`, which the `validate` step counts and
writes aside. A file that cannot be read at all raises `CurateInputError` naming the path.
"""

from __future__ import annotations

import json
import math
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from datatrove.data import Document
from datatrove.pipeline.base import PipelineStep

from infir.curate.config import SourceConfig


class CurateInputError(RuntimeError):
    """An input that cannot be read at all (missing, corrupt, wrong format); the message names it."""


@dataclass(frozen=True)
class Shard:
    source: int  # index into the config's sources
    path: str | None  # None for hf / builtin sources
    part: int
    parts: int


def expand_paths(source: SourceConfig) -> list[str]:
    from fsspec.core import url_to_fs

    files: list[str] = []
    for pattern in source.paths:
        fs, path = url_to_fs(pattern)
        matches = sorted(fs.glob(path)) if any(c in path for c in "*?[") else ([path] if fs.exists(path) else [])
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


def plan_shards(sources: list[SourceConfig], tasks: int) -> list[Shard]:
    """Split every source into shards; about `tasks` of them, at least one per input file."""
    per_source_files = [expand_paths(s) if s.type in ("jsonl", "parquet", "warc") else [None] for s in sources]
    for source, files in zip(sources, per_source_files):
        for path in files:
            if path is not None:
                probe(path, source.type)
    n_units = sum(len(f) for f in per_source_files)
    parts = max(1, math.ceil(tasks / max(n_units, 1)))
    return [Shard(i, path, part, parts) for i, files in enumerate(per_source_files)
            for path in files for part in range(parts)]


def _open_binary(path: str):
    import fsspec

    return fsspec.open(path, "rb", compression="infer").open()


def _bad(reason: str, raw: str, where: str) -> Document:
    return Document(text=raw, id=where, metadata={"_bad": reason, "_where": where})


class ShardReader(PipelineStep):
    """Reads shard `rank` of a plan; yields Documents with `url`, `source` and the domain hint in metadata."""

    name = "📖 infir reader"
    type = "📖 - READER"

    def __init__(self, sources: list[SourceConfig], shards: list[Shard]):
        super().__init__()
        self.sources = sources
        self.shards = shards

    def run(self, data=None, rank: int = 0, world_size: int = 1) -> Iterator[Document]:
        shard = self.shards[rank]
        source = self.sources[shard.source]
        reader = {"jsonl": self._jsonl, "parquet": self._parquet, "warc": self._warc, "hf": self._hf,
                  "builtin": self._builtin}[source.type]
        for j, doc in enumerate(reader(source, shard)):
            # every record of the part yields one Document (bad ones too), so this is the record's
            # index in its file: with the file, a document order that no shard plan changes
            doc.metadata["_row"] = shard.part + j * shard.parts
            doc.metadata.setdefault("source", source.label())
            if source.domain:
                doc.metadata["domain_hint"] = source.domain
            self.stat_update("documents")
            yield doc

    # Every reader yields (index, record-or-bad-Document) only for its part, and stops at `limit`.
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
        path = shard.path
        try:
            stream = _open_binary(path)
        except Exception as e:  # noqa: BLE001 - any failure to open is reported with the path
            raise CurateInputError(f"cannot read {path}: {e}") from e
        with stream:
            try:
                for index, raw in enumerate(stream):
                    if source.limit is not None and index >= source.limit:
                        break
                    if not self._mine(index, shard):
                        continue
                    where = f"{path}:{index + 1}"
                    try:
                        line = raw.decode("utf-8")
                    except UnicodeDecodeError:
                        yield _bad("invalid_utf8", raw.decode("utf-8", errors="replace"), where)
                        continue
                    if not line.strip():
                        yield _bad("empty_line", line, where)
                        continue
                    try:
                        record = json.loads(line)
                    except ValueError:
                        yield _bad("malformed_json", line.rstrip("\n"), where)
                        continue
                    if not isinstance(record, dict):
                        yield _bad("not_an_object", line.rstrip("\n"), where)
                        continue
                    yield self._from_record(record, source, where)
            except (OSError, EOFError, zlib.error) as e:  # truncated or corrupt compression
                raise CurateInputError(f"cannot read {path}: {e}") from e

    def _parquet(self, source: SourceConfig, shard: Shard) -> Iterator[Document]:
        import pyarrow.parquet as pq

        path = shard.path
        try:
            parquet = pq.ParquetFile(_open_binary(path))
        except Exception as e:  # noqa: BLE001
            raise CurateInputError(f"cannot read {path}: {e}") from e
        index = 0
        for batch in parquet.iter_batches(batch_size=1024):
            for record in batch.to_pylist():
                if source.limit is not None and index >= source.limit:
                    return
                if self._mine(index, shard):
                    yield self._from_record(record, source, f"{path}:row{index}")
                index += 1

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
            mine = self._mine(index, shard)
            index += 1
            if not mine:
                continue
            html = record.content_stream().read().decode("utf-8", errors="replace")
            text = trafilatura.extract(html, url=url, include_comments=False) or ""
            doc_id = record.rec_headers.get_header("WARC-Record-ID") or where
            yield Document(text=text, id=doc_id.strip("<>"), metadata={"url": url, "_where": where})

    def _hf(self, source: SourceConfig, shard: Shard) -> Iterator[Document]:
        """A dataset by hub name (streamed), a local folder of data files (parquet, jsonl, csv;
        `load_dataset` reads it offline), or a folder written by `Dataset.save_to_disk`."""
        for index, record in enumerate(_hf_records(source, shard)):
            if source.limit is not None and index * shard.parts >= source.limit:
                return
            yield self._from_record(dict(record), source, f"{source.name}:{shard.part}:{index}")

    def _builtin(self, source: SourceConfig, shard: Shard) -> Iterator[Document]:
        from infir.curate.seeds import iter_named

        for index, record in enumerate(iter_named(source.name, **source.kwargs)):
            if source.limit is not None and index >= source.limit:
                return
            if self._mine(index, shard):
                yield self._from_record(record, source, f"{source.name}:{index}")


def _hf_records(source: SourceConfig, shard: Shard):
    import datasets
    from datasets.distributed import split_dataset_by_node

    local = Path(source.name).expanduser()
    try:
        if (local / "state.json").is_file() or (local / "dataset_dict.json").is_file():
            saved = datasets.load_from_disk(str(local))
            if isinstance(saved, datasets.DatasetDict):
                saved = saved[source.split]
            return saved.shard(num_shards=shard.parts, index=shard.part, contiguous=False)
        streamed = datasets.load_dataset(source.name, source.subset, split=source.split, streaming=True)
        return split_dataset_by_node(streamed, rank=shard.part, world_size=shard.parts)
    except Exception as e:  # noqa: BLE001 - a dataset that cannot be opened fails with its name
        raise CurateInputError(f"cannot read the dataset {source.name}: {type(e).__name__}: {e}") from e
