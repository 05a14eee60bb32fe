"""Opening inputs (local or fsspec URLs) and telling compressed ones apart."""

from __future__ import annotations

from typing import BinaryIO

# A compressed stream cannot be entered in the middle, so such a file is read by one task.
COMPRESSED_SUFFIXES = (".gz", ".zst", ".zstd", ".bz2", ".xz", ".lz4", ".zip")


def is_compressed(path: str) -> bool:
    return path.lower().endswith(COMPRESSED_SUFFIXES)


def open_binary(path: str, decompress: bool = True) -> BinaryIO:
    """A binary stream over `path`; decompressed by suffix unless `decompress` is False (then seekable)."""
    import fsspec

    return fsspec.open(path, "rb", compression="infer" if decompress else None).open()


def file_size(path: str) -> int:
    from fsspec.core import url_to_fs

    fs, inner = url_to_fs(path)
    return int(fs.size(inner))
