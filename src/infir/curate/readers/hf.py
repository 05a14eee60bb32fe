"""Hugging Face datasets split by their own files.

A streamed dataset (hub name or a local folder of data files) is `num_shards` files; a task
reads a contiguous run of them, each through `IterableDataset.shard(num_shards, i)`, which opens
that one file only. A dataset cannot be split finer than its files, so a source asked for more
tasks than it has files gets one task per file and the log says so. A dataset written by
`save_to_disk` is split by row ranges. Records without an id are named by (file, row in file) or
the row number, which do not depend on how many tasks read the dataset.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterator

log = logging.getLogger("infir.curate")


class DatasetError(RuntimeError):
    pass


def _saved_path(name: str) -> Path | None:
    local = Path(name).expanduser()
    return local if (local / "state.json").is_file() or (local / "dataset_dict.json").is_file() else None


def _load(name: str, subset: str | None, split: str):
    import datasets

    saved = _saved_path(name)
    if saved is not None:
        data = datasets.load_from_disk(str(saved))
        return data[split] if isinstance(data, datasets.DatasetDict) else data
    return datasets.load_dataset(name, subset, split=split, streaming=True)


def plan(name: str, subset: str | None, split: str, tasks: int) -> tuple[list[tuple[int, int]], int]:
    """Contiguous [start, stop) runs of the dataset's files (or rows, for a saved dataset), and
    how many files (rows) it has."""
    import datasets

    data = _load(name, subset, split)
    if isinstance(data, datasets.Dataset):
        units = len(data)
    else:
        units = data.num_shards
        if tasks > units:
            log.warning(
                "the dataset %s has %d file(s): %d task(s) read it, not %d (a dataset is split by its files)",
                name,
                units,
                units,
                tasks,
            )
    parts = max(1, min(tasks, units))
    bounds = [units * i // parts for i in range(parts + 1)]
    return list(zip(bounds[:-1], bounds[1:])), units


FILE_ROW_BITS = 24  # a streamed dataset's record order: its file's number, then its row in the file


def iter_records(
    name: str, subset: str | None, split: str, start: int, stop: int, units: int
) -> Iterator[tuple[str, int, dict]]:
    """(a position that names the record, its place in the dataset's order, the record) for files
    (rows) [start, stop)."""
    import datasets

    data = _load(name, subset, split)
    if isinstance(data, datasets.Dataset):
        if len(data) != units:
            raise DatasetError(
                f"{name} has {len(data)} rows, the plan was made for {units}: rerun with --force"
            )
        for offset, record in enumerate(data.select(range(start, stop))):
            yield f"row{start + offset}", start + offset, record
        return
    if data.num_shards != units:
        raise DatasetError(
            f"{name} has {data.num_shards} files, the plan was made for {units}: rerun with --force"
        )
    for file_index in range(start, stop):
        for row, record in enumerate(data.shard(num_shards=units, index=file_index, contiguous=True)):
            yield f"file{file_index}:{row}", (file_index << FILE_ROW_BITS) | row, record
