"""Checksums of a written folder (checkpoints, final models): a manifest written last, checked on load.

`checksums.json` maps each file to its size and xxh3-128; `verify` names the first file that is
missing, truncated or changed, so a damaged checkpoint stops a stage with its path instead of
training on it.
"""

from __future__ import annotations

import json
from pathlib import Path

MANIFEST = "checksums.json"
_CHUNK = 1 << 22


class CorruptCheckpoint(RuntimeError):
    pass


def _file_hash(path: Path) -> str:
    import xxhash

    h = xxhash.xxh3_128()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def write_manifest(folder: Path) -> None:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST)
    entries = {
        str(p.relative_to(folder)): {"size": p.stat().st_size, "xxh3_128": _file_hash(p)} for p in files
    }
    (folder / MANIFEST).write_text(json.dumps({"files": entries}, indent=1) + "\n")


def verify(folder: Path) -> None:
    """Raise CorruptCheckpoint naming the first file that is missing or differs from the manifest.
    A folder without a manifest (a model from elsewhere, or one written by an older infir) passes."""
    manifest = folder / MANIFEST
    if not manifest.is_file():
        return
    try:
        entries = json.loads(manifest.read_text())["files"]
    except (ValueError, KeyError) as exc:
        raise CorruptCheckpoint(f"{manifest}: unreadable checksum manifest ({exc})") from None
    for name, want in entries.items():
        path = folder / name
        if not path.is_file():
            raise CorruptCheckpoint(f"{path}: missing (listed in {manifest})")
        if path.stat().st_size != want["size"]:
            raise CorruptCheckpoint(
                f"{path}: {path.stat().st_size} bytes, the checkpoint wrote {want['size']} "
                "(truncated or overwritten)"
            )
        if _file_hash(path) != want["xxh3_128"]:
            raise CorruptCheckpoint(f"{path}: content differs from the checksum written with it (damaged)")
