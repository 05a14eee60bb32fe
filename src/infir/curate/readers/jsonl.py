"""JSON Lines read by byte range.

A task owns the lines that *start* inside its range [start, end): it seeks to `start - 1`, skips
to the next newline (so a line beginning exactly at `start` is its own), then reads whole lines
until the next line would start at or after `end`. The line that straddles `end` is finished by
this task and skipped by the next, so every line is read by exactly one task and no task reads
more than its range plus one line (and one read-ahead buffer).

Compressed files cannot be entered in the middle: they are read whole, by one task per file.

Line numbers are what people look up in an editor, but a task that starts mid-file does not know
how many lines came before it. It counts them (reading the prefix once) only when it meets a bad
line; a well-formed corpus is never reread. Offsets, which every task knows, name records that
carry no id of their own, so their ids do not depend on how the file was split.
"""

from __future__ import annotations

from typing import Iterator

from infir.curate.readers import files

_CHUNK = 1 << 20


def split_ranges(size: int, parts: int) -> list[tuple[int, int]]:
    """`parts` contiguous byte ranges covering [0, size); fewer when the file has fewer bytes."""
    parts = max(1, min(parts, size))
    bounds = [size * i // parts for i in range(parts + 1)]
    return list(zip(bounds[:-1], bounds[1:]))


def iter_lines(path: str, start: int = 0, end: int | None = None) -> Iterator[tuple[int, bytes]]:
    """(offset of the line's first byte, the line with its newline) for the lines starting in
    [start, end); `end=None` reads to the end. A compressed file must be read with start 0."""
    compressed = files.is_compressed(path)
    if compressed and (start or end is not None):
        raise ValueError(f"{path} is compressed: it cannot be read from byte {start}")
    with files.open_binary(path, decompress=compressed) as stream:
        pos = 0
        if start > 0:
            stream.seek(start - 1)
            pos = start - 1 + len(stream.readline())
        while end is None or pos < end:
            raw = stream.readline()
            if not raw:
                return
            yield pos, raw
            pos += len(raw)


def count_lines_before(path: str, offset: int) -> int:
    """Newlines in the first `offset` bytes of a plain (uncompressed) file."""
    count = 0
    with files.open_binary(path, decompress=False) as stream:
        left = offset
        while left > 0:
            chunk = stream.read(min(_CHUNK, left))
            if not chunk:
                break
            count += chunk.count(b"\n")
            left -= len(chunk)
    return count


class LineNumbers:
    """1-based line numbers of a task's lines, the lines before its range counted on first need."""

    def __init__(self, path: str, start: int):
        self.path, self.start = path, start
        self._before: int | None = 0 if start == 0 else None

    def number(self, index_in_task: int, first_offset: int) -> int:
        if self._before is None:
            self._before = count_lines_before(self.path, first_offset)
        return self._before + index_in_task + 1
