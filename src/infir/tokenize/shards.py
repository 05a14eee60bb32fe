"""Token shards: flat memory-mapped token files plus an index of document boundaries.

One shard is three files in its domain's folder:
  <name>.bin      the tokens of its documents, back to back (uint16 or uint32), each document
                  already ending with the end-of-document token
  <name>.idx.npy  int64 offsets, one more than documents: document i is bin[idx[i]:idx[i+1]]
  <name>.key.npy  uint64 hash of each document's id (selects the validation split independently
                  of how the input was sharded)
`shards/index.json` lists every shard with its token and document counts and the xxh3 checksum of
its .bin, per domain, plus the validation documents. Opening a shard checks sizes and offsets (and
the checksum unless told not to), so a truncated or corrupt shard fails with its path.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xxhash

INDEX_FILE = "index.json"
FORMAT_VERSION = 1


class ShardError(ValueError):
    """A shard that is missing, truncated or corrupt; the message starts with its path."""


def dtype_for_vocab(vocab_size: int, requested: str = "auto") -> np.dtype:
    if requested == "auto":
        return np.dtype(np.uint16 if vocab_size <= 1 << 16 else np.uint32)
    dtype = np.dtype(requested)
    if vocab_size > np.iinfo(dtype).max + 1:
        raise ValueError(f"dtype {requested} cannot hold ids of a {vocab_size}-token vocabulary")
    return dtype


def doc_key(doc_id: str) -> int:
    return xxhash.xxh3_64_intdigest(doc_id.encode("utf-8"))


class ShardWriter:
    """Appends documents to one shard; files appear under their final names only on `close()`."""

    def __init__(self, folder: Path, name: str, dtype: np.dtype):
        self.folder, self.name, self.dtype = Path(folder), name, np.dtype(dtype)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._tmp = self.folder / f".{name}.bin.tmp-{os.getpid()}"
        self._f = self._tmp.open("wb")
        self._hash = xxhash.xxh3_64()
        self._offsets = [0]
        self._keys: list[int] = []

    def append(self, tokens: np.ndarray, key: int) -> None:
        data = np.ascontiguousarray(tokens, dtype=self.dtype).tobytes()
        self._f.write(data)
        self._hash.update(data)
        self._offsets.append(self._offsets[-1] + len(tokens))
        self._keys.append(key)

    @property
    def tokens(self) -> int:
        return self._offsets[-1]

    def close(self) -> dict:
        self._f.close()
        np.save(self.folder / f"{self.name}.idx.npy", np.asarray(self._offsets, dtype=np.int64))
        np.save(self.folder / f"{self.name}.key.npy", np.asarray(self._keys, dtype=np.uint64))
        os.replace(self._tmp, self.folder / f"{self.name}.bin")
        return {
            "name": self.name,
            "tokens": self.tokens,
            "docs": len(self._keys),
            "xxh3": self._hash.hexdigest(),
        }

    def abort(self) -> None:
        self._f.close()
        self._tmp.unlink(missing_ok=True)


def _checksum(path: Path, block: int = 1 << 24) -> str:
    h = xxhash.xxh3_64()
    with path.open("rb") as f:
        while chunk := f.read(block):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class Shard:
    path: Path  # the .bin file
    tokens: np.ndarray  # memmap
    offsets: np.ndarray  # int64, docs + 1
    keys: np.ndarray  # uint64, docs

    @classmethod
    def open(cls, folder: Path, meta: dict, dtype: np.dtype, verify: bool = True) -> Shard:
        path = Path(folder) / f"{meta['name']}.bin"
        if not path.exists():
            raise ShardError(f"{path}: shard file is missing")
        expected = meta["tokens"] * dtype.itemsize
        size = path.stat().st_size
        if size != expected:
            raise ShardError(
                f"{path}: truncated or overlong shard: {size} bytes, the index says {expected} "
                f"({meta['tokens']} {dtype.name} tokens)"
            )
        try:
            offsets = np.load(path.with_name(f"{meta['name']}.idx.npy"))
            keys = np.load(path.with_name(f"{meta['name']}.key.npy"))
        except (OSError, ValueError, EOFError) as e:
            raise ShardError(f"{path}: cannot read its document index ({e})") from e
        if (
            offsets.ndim != 1
            or len(offsets) != meta["docs"] + 1
            or len(keys) != meta["docs"]
            or offsets[0] != 0
            or offsets[-1] != meta["tokens"]
            or np.any(np.diff(offsets) <= 0)
        ):
            raise ShardError(
                f"{path}: corrupt document index (offsets do not partition "
                f"{meta['tokens']} tokens into {meta['docs']} non-empty documents)"
            )
        if verify and _checksum(path) != meta["xxh3"]:
            raise ShardError(f"{path}: corrupt shard: checksum mismatch")
        tokens = np.memmap(path, dtype=dtype, mode="r") if meta["tokens"] else np.zeros(0, dtype=dtype)
        return cls(path=path, tokens=tokens, offsets=offsets, keys=keys)


class ShardSet:
    """The documents of one domain (or a split of it) across its shards, addressable by document index."""

    def __init__(self, name: str, shards: list[Shard], select: np.ndarray | None = None):
        self.name, self.shards = name, shards
        doc_shard = np.concatenate(
            [np.full(len(s.offsets) - 1, i, np.int32) for i, s in enumerate(shards)] + [np.zeros(0, np.int32)]
        )
        doc_start = np.concatenate([s.offsets[:-1] for s in shards] + [np.zeros(0, np.int64)])
        doc_len = np.concatenate([np.diff(s.offsets) for s in shards] + [np.zeros(0, np.int64)])
        if select is not None:
            doc_shard, doc_start, doc_len = doc_shard[select], doc_start[select], doc_len[select]
        self.doc_shard, self.doc_start, self.doc_len = doc_shard, doc_start, doc_len

    @property
    def n_docs(self) -> int:
        return len(self.doc_len)

    @property
    def n_tokens(self) -> int:
        return int(self.doc_len.sum())

    def doc_tokens(self, doc: int, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Tokens [start, stop) of document `doc` (a view into the memmap)."""
        shard = self.shards[self.doc_shard[doc]]
        base = int(self.doc_start[doc])
        stop = int(self.doc_len[doc]) if stop is None else stop
        return shard.tokens[base + start : base + stop]

    @classmethod
    def open(cls, shards_dir: Path, domain: str, split: str = "train", verify: bool = True) -> ShardSet:
        """`split`: "train" (all but the held-out documents), "val" (the held-out ones) or "all"."""
        index = read_index(shards_dir)
        if domain not in index["domains"]:
            raise KeyError(f"{shards_dir}: no domain {domain!r}; it has {sorted(index['domains'])}")
        entry = index["domains"][domain]
        dtype = np.dtype(index["dtype"])
        folder = Path(shards_dir) / domain
        shards = [Shard.open(folder, meta, dtype, verify) for meta in entry["shards"]]
        val_file = folder / "val_docs.npy"
        val = np.load(val_file) if val_file.exists() else np.zeros(0, np.int64)
        total = sum(meta["docs"] for meta in entry["shards"])
        if split == "all":
            select = None
        elif split == "val":
            select = val
        elif split == "train":
            keep = np.ones(total, dtype=bool)
            keep[val] = False
            select = np.flatnonzero(keep)
        else:
            raise ValueError(f"split must be train, val or all, not {split!r}")
        return cls(f"{domain}/{split}", shards, select)


def read_index(shards_dir: Path) -> dict:
    path = Path(shards_dir) / INDEX_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path}: no shard index (has the tokenize stage completed?)")
    try:
        index = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ShardError(f"{path}: corrupt shard index ({e})") from e
    if index.get("format") != FORMAT_VERSION:
        raise ShardError(f"{path}: shard format {index.get('format')!r}, this infir reads {FORMAT_VERSION}")
    return index
