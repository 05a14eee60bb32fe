"""Parquet read by row groups: a task reads the footer and its own row groups, nothing else."""

from __future__ import annotations

from bisect import bisect_left
from itertools import accumulate
from typing import Iterator

from infir.curate.readers import files


def row_group_rows(path: str) -> list[int]:
    """Rows per row group, from the footer alone (also what `probe` reads)."""
    import pyarrow.parquet as pq

    with files.open_binary(path, decompress=False) as stream:
        meta = pq.read_metadata(stream)
        return [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]


def split_row_groups(rows: list[int], parts: int) -> list[tuple[int, int]]:
    """`parts` contiguous runs of row groups [first, stop), about equal in rows (fewer when the
    file has fewer groups)."""
    n = len(rows)
    if n == 0:
        return [(0, 0)]
    parts = max(1, min(parts, n))
    cum, total, cuts = list(accumulate(rows)), sum(rows), [0]
    for k in range(1, parts):
        cut = bisect_left(cum, k * total / parts) + 1
        cuts.append(min(max(cut, cuts[-1] + 1), n - (parts - k)))  # every run keeps at least one group
    cuts.append(n)
    return list(zip(cuts[:-1], cuts[1:]))


def iter_rows(
    path: str, first: int = 0, stop: int | None = None, batch_size: int = 1024
) -> Iterator[tuple[int, dict]]:
    """(row index in the file, record) for the rows of row groups [first, stop); None: to the last."""
    import pyarrow.parquet as pq

    with files.open_binary(path, decompress=False) as stream:
        parquet = pq.ParquetFile(stream)
        meta = parquet.metadata
        stop = meta.num_row_groups if stop is None else min(stop, meta.num_row_groups)
        index = sum(meta.row_group(i).num_rows for i in range(first))
        if stop <= first:
            return
        for batch in parquet.iter_batches(batch_size=batch_size, row_groups=list(range(first, stop))):
            for record in batch.to_pylist():
                yield index, record
                index += 1
