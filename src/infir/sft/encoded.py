"""Tokenized SFT conversations on disk: encoded and packed once per run, memory-mapped by every rank.

`<sft stage dir>/encoded/` holds
  ids.npy, mask.npy    every kept conversation's token ids (int32) and assistant mask, end to end
  offsets.npy          where each conversation starts (n + 1 entries)
  bins.npy, bin_offsets.npy
                       the packed rows (best-fit decreasing over the lengths), when packing is on
  meta.json            the load report (kept, dropped by reason), conversations too long, and a
                       `seq_len`/`max_tokens`/`packing` record of what it was built for
  _DONE                written last

Under torchrun every rank encodes every world-th conversation into its own part (tokenizing is the
slow step), then rank 0 joins the parts in the original order and packs the rows; the others wait and
map the result. Nothing is held per conversation in Python beyond one part's buffers.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from infir.sft.packing import Example, best_fit_decreasing, encode_conversation

DONE = "_DONE"


class EncodedConversations:
    """A read-only sequence of `Example`s backed by the arrays above."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.ids = np.load(self.folder / "ids.npy", mmap_mode="r")
        self.mask = np.load(self.folder / "mask.npy", mmap_mode="r")
        self.offsets = np.load(self.folder / "offsets.npy")
        self.lengths = np.diff(self.offsets)
        self.meta = json.loads((self.folder / "meta.json").read_text())

    def __len__(self) -> int:
        return len(self.lengths)

    def __getitem__(self, i: int) -> Example:
        a, b = int(self.offsets[i]), int(self.offsets[i + 1])
        ids = self.ids[a:b].astype(np.int64)
        labels = np.where(self.mask[a:b], ids, -100)
        return Example(ids.tolist(), labels.tolist())

    def rows(self) -> list[list[int]] | None:
        if not (self.folder / "bins.npy").exists():
            return None
        items, starts = np.load(self.folder / "bins.npy"), np.load(self.folder / "bin_offsets.npy")
        return [items[a:b].tolist() for a, b in zip(starts[:-1], starts[1:])]


def is_built(folder: Path) -> bool:
    return (folder / DONE).is_file()


def encode_part(
    folder: Path,
    tokenizer,
    conversations: Iterable[list[dict]],
    max_tokens: int,
    rank: int = 0,
    world: int = 1,
    flush_tokens: int = 1 << 20,
) -> None:
    """This rank's share (conversation i when i % world == rank) into `part-<rank>/`."""
    part = folder / f"part-{rank:05d}"
    shutil.rmtree(part, ignore_errors=True)
    part.mkdir(parents=True)
    lengths: list[int] = []
    ids_buf: list[np.ndarray] = []
    mask_buf: list[np.ndarray] = []
    pending = 0
    with (part / "ids.bin").open("wb") as ids_out, (part / "mask.bin").open("wb") as mask_out:
        for i, messages in enumerate(conversations):
            if i % world != rank:
                continue
            ex = encode_conversation(tokenizer, messages)
            if len(ex.input_ids) > max_tokens:
                lengths.append(-1)  # dropped, counted; its place in the order is kept
                continue
            lengths.append(len(ex.input_ids))
            ids_buf.append(np.asarray(ex.input_ids, dtype=np.int32))
            mask_buf.append(np.asarray([label != -100 for label in ex.labels], dtype=np.bool_))
            pending += len(ex.input_ids)
            if pending >= flush_tokens:
                _flush(ids_buf, mask_buf, ids_out, mask_out)
                pending = 0
        _flush(ids_buf, mask_buf, ids_out, mask_out)
    np.save(part / "lengths.npy", np.asarray(lengths, dtype=np.int64))


def _flush(ids_buf: list, mask_buf: list, ids_out, mask_out) -> None:
    if ids_buf:
        np.concatenate(ids_buf).tofile(ids_out)
        np.concatenate(mask_buf).tofile(mask_out)
    ids_buf.clear()
    mask_buf.clear()


def join_parts(folder: Path, world: int, seq_len: int, packing: bool, meta: dict) -> None:
    """Rank 0: the parts in the original conversation order, packed, then `_DONE`."""
    parts = [folder / f"part-{r:05d}" for r in range(world)]
    lengths = [np.load(p / "lengths.npy") for p in parts]
    ids = [
        np.memmap(p / "ids.bin", dtype=np.int32, mode="r") if n.max(initial=-1) > 0 else np.empty(0, np.int32)
        for p, n in zip(parts, lengths)
    ]
    masks = [
        np.memmap(p / "mask.bin", dtype=np.bool_, mode="r")
        if n.max(initial=-1) > 0
        else np.empty(0, np.bool_)
        for p, n in zip(parts, lengths)
    ]
    starts = [np.concatenate([[0], np.cumsum(np.maximum(n, 0))]) for n in lengths]
    total = sum(len(n) for n in lengths)
    every = np.empty(total, dtype=np.int64)  # conversation i is the (i // world)-th of part i % world
    for r, n in enumerate(lengths):
        every[r::world] = n
    kept = np.flatnonzero(every >= 0)
    offsets = np.concatenate([[0], np.cumsum(every[kept])]).astype(np.int64)
    all_ids = np.lib.format.open_memmap(
        folder / "ids.npy", mode="w+", dtype=np.int32, shape=(int(offsets[-1]),)
    )
    all_mask = np.lib.format.open_memmap(
        folder / "mask.npy", mode="w+", dtype=np.bool_, shape=(int(offsets[-1]),)
    )
    for j, i in enumerate(kept.tolist()):
        r, k = i % world, i // world
        a, b = starts[r][k], starts[r][k] + lengths[r][k]
        all_ids[offsets[j] : offsets[j + 1]] = ids[r][a:b]
        all_mask[offsets[j] : offsets[j + 1]] = masks[r][a:b]
    all_ids.flush()
    all_mask.flush()
    del all_ids, all_mask
    out_lengths = every[kept]
    np.save(folder / "offsets.npy", offsets)
    if packing and len(out_lengths):
        bins = best_fit_decreasing(out_lengths, seq_len)
        np.save(folder / "bins.npy", np.asarray([i for b in bins for i in b], dtype=np.int64))
        np.save(
            folder / "bin_offsets.npy",
            np.concatenate([[0], np.cumsum([len(b) for b in bins])]).astype(np.int64),
        )
    too_long = Counter({"too_long": total - len(kept)}) if total > len(kept) else Counter()
    del ids, masks
    meta = {
        **meta,
        "conversations": total,
        "examples": len(kept),
        "too_long": dict(too_long),
        "seq_len": seq_len,
        "packing": packing,
    }
    (folder / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    for p in parts:
        shutil.rmtree(p)
    (folder / DONE).write_text("")


def build(
    folder: Path,
    tokenizer,
    conversations: Callable[[], tuple[Iterable[list[dict]], Callable[[], dict]]],
    max_tokens: int,
    seq_len: int,
    packing: bool,
    rank: int = 0,
    world: int = 1,
    wait: Callable[[], None] = lambda: None,
) -> EncodedConversations:
    """Every rank calls it. `conversations()` gives a fresh stream of conversations and a function that
    returns the load report once the stream is consumed; `wait` is a barrier over the ranks."""
    folder.mkdir(parents=True, exist_ok=True)
    stream, report = conversations()
    encode_part(folder, tokenizer, stream, max_tokens, rank, world)
    wait()
    if rank == 0:
        join_parts(folder, world, seq_len, packing, {"load": report()})
    wait()
    return EncodedConversations(folder)
