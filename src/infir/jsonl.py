"""JSON Lines files (`.jsonl`, gzipped when the name ends in `.gz`): objects with their 1-based line numbers.

Every problem names `path:line`: a line that is not UTF-8, not JSON, or not a JSON object. `scan` hands
a bad line to the caller as a `JsonlError` value, for readers that count and drop; `read_objects` raises
it, for readers that fail. Lines are split on bytes and decoded one at a time, so one bad line never
hides the lines after it. Blank lines are skipped.
"""

from __future__ import annotations

import gzip
import json
import os
import zlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any


class JsonlError(ValueError):
    """A bad line. `where` is `path:line`, `reason` a short name to count it by, `detail` what is wrong."""

    def __init__(self, where: str, reason: str, detail: str):
        super().__init__(f"{where}: {detail}")
        self.where, self.reason, self.detail = where, reason, detail


def open_binary(path: str | Path) -> IO[bytes]:
    path = Path(path)
    return gzip.open(path, "rb") if path.name.endswith(".gz") else path.open("rb")


def parse_object(line: str | bytes, where: str) -> dict:
    """The JSON object on one line, or a JsonlError naming `where`."""
    if isinstance(line, (bytes, bytearray)):
        try:
            line = line.decode("utf-8")
        except UnicodeDecodeError as e:
            raise JsonlError(where, "invalid_utf8", f"not UTF-8 ({e.reason} at byte {e.start})") from e
    try:
        value = json.loads(line)
    except json.JSONDecodeError as e:
        raise JsonlError(where, "not_json", f"not valid JSON ({e.msg} at column {e.colno})") from e
    if not isinstance(value, dict):
        raise JsonlError(where, "not_an_object", f"expected a JSON object, got {type(value).__name__}")
    return value


def scan(path: str | Path) -> Iterator[tuple[int, dict | JsonlError]]:
    """`(line number, object)` for every non-blank line; a bad line's object is its JsonlError.

    A file that cannot be opened raises OSError; a corrupt or truncated gzip stream raises JsonlError.
    """
    path = Path(path)
    with open_binary(path) as f:
        try:
            for lineno, raw in enumerate(f, 1):
                if raw.strip():
                    yield lineno, _object_or_error(raw, f"{path}:{lineno}")
        except (OSError, EOFError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
            raise JsonlError(str(path), "unreadable", f"unreadable input ({e})") from e


def _object_or_error(raw: bytes, where: str) -> dict | JsonlError:
    try:
        return parse_object(raw, where)
    except JsonlError as e:
        return e


def read_objects(path: str | Path) -> Iterator[tuple[int, dict]]:
    """`(line number, object)` for every non-blank line; the first bad line raises its JsonlError."""
    for lineno, value in scan(path):
        if isinstance(value, JsonlError):
            raise value
        yield lineno, value


def write_jsonl(
    path: str | Path, rows: Iterable[dict], *, default: Callable[[Any], Any] | None = None
) -> int:
    """Write one JSON object a line (UTF-8, not ASCII-escaped) and return how many.

    The rows go to a temporary file beside `path` that replaces it at the end, so a reader never sees
    half a file. `default` is `json.dumps`'s hook for values JSON has no type for.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    count = 0
    with tmp.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False, default=default) + "\n")
            count += 1
    os.replace(tmp, path)
    return count
