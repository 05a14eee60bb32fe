"""Benchmark records from a local file or folder, or from a Hugging Face dataset by name.

A local path may be one file (`.jsonl`, `.jsonl.gz`, `.json`, `.parquet`) or a folder holding one file per
split (`test.jsonl`, `train.jsonl.gz`, `test-00000-of-00001.parquet`, ...). Anything that is not an
existing path is a Hugging Face dataset name, loaded with `datasets` (the `hf` extra); that path cannot run
offline, but it is the same code a GPU box with a hub connection runs.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable, Iterator
from pathlib import Path

from infir.jsonl import JsonlError, read_objects

_SUFFIXES = (".jsonl", ".jsonl.gz", ".json", ".json.gz", ".parquet")


class DataError(ValueError):
    """A benchmark file or record is malformed; the message names the file, line or field."""


def split_file(folder: Path, split: str) -> Path | None:
    """The file holding `split` inside `folder`, or None when the folder has no such split."""
    for suffix in _SUFFIXES:
        path = folder / f"{split}{suffix}"
        if path.is_file():
            return path
    shards = sorted(folder.glob(f"{split}-*.parquet")) + sorted(folder.glob(f"{split}-*.jsonl"))
    if shards:
        return shards[0]
    return None


def read_records(path: Path) -> list[dict]:
    """Every record of one local file, with errors that name the file and line."""
    name = path.name
    if name.endswith(".parquet"):
        return _read_parquet(path)
    if not name.endswith((".json", ".json.gz")):
        return [record for _, record in read_jsonl(path)]
    opener = gzip.open if name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        try:
            data = json.load(f)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}: not valid JSON ({e})") from e
    if isinstance(data, dict):  # {"data": [...]} or {"test": [...]} style dumps
        lists = [v for v in data.values() if isinstance(v, list)]
        if len(lists) != 1:
            raise DataError(f"{path}: expected a JSON list of records or an object with one list")
        data = lists[0]
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise DataError(f"{path}: expected a JSON list of objects")
    return data


def read_jsonl(path: Path) -> Iterator[tuple[int, dict]]:
    """`(line number, record)` of a JSONL file; a bad line raises a DataError naming it."""
    try:
        yield from read_objects(path)
    except JsonlError as e:
        raise DataError(str(e)) from e


def _read_parquet(path: Path) -> list[dict]:
    try:
        import pyarrow.parquet as pq
    except ImportError as e:  # pragma: no cover - pyarrow ships with the web/hf extras
        raise DataError(f"{path}: reading parquet needs pyarrow (pip install 'infir[web]')") from e
    files = [path]
    if "-of-" in path.name:  # sharded split: read every shard in order
        files = sorted(path.parent.glob(path.name.split("-")[0] + "-*.parquet"))
    return [row for file in files for row in pq.read_table(file).to_pylist()]


def load_hf(name: str, config: str | None, split: str) -> list[dict]:
    """Records of a Hugging Face dataset split (downloads on first use; needs network)."""
    try:
        import datasets
    except ImportError as e:
        raise DataError(
            f"loading the dataset {name!r} by name needs the `datasets` package "
            f"(pip install 'infir[hf]'), or pass a local path with --data"
        ) from e
    ds = datasets.load_dataset(name, config, split=split)
    return [dict(row) for row in ds]


def load_split(
    source: str | Path, split: str, *, hf_config: str | None = None, required: bool = True
) -> list[dict] | None:
    """Records of `split` from a local file/folder or a dataset name; None when optional and absent.

    A single local file serves every split (it *is* the data); a folder must hold a file for the split.
    """
    path = Path(source).expanduser()
    if path.is_file():
        return read_records(path)
    if path.is_dir():
        file = split_file(path, split)
        if file is None:
            if not required:
                return None
            present = sorted(p.name for p in path.iterdir() if p.name.endswith(_SUFFIXES))
            raise DataError(
                f"{path}: no file for split {split!r} (looked for {split}.jsonl, {split}.jsonl.gz, "
                f"{split}.json, {split}.parquet); found {present or 'nothing'}"
            )
        return read_records(file)
    if _looks_local(str(source)):
        raise DataError(f"{source}: no such file or folder")
    try:
        return load_hf(str(source), hf_config, split)
    except DataError:
        raise
    except ValueError:  # the dataset has no such split
        if required:
            raise
        return None


def _looks_local(source: str) -> bool:
    # Dataset names are `owner/name` or `name`; anything with a suffix, a leading dot or several
    # slashes is a path the user mistyped, and must not silently turn into a hub download.
    return source.startswith((".", "/", "~")) or source.count("/") > 1 or source.endswith(_SUFFIXES)


def check_fields(records: Iterable[dict], fields: tuple[str, ...], where: str) -> None:
    for i, record in enumerate(records):
        missing = [f for f in fields if f not in record]
        if missing:
            raise DataError(f"{where}: record {i} lacks field(s) {missing}; it has {sorted(record)}")
