"""Validation batches: the held-out documents of each domain, packed in order, the same every pass.

Unlike training there is no shuffling and no endless stream: each domain's held-out documents are
packed back to back (the domain's last row padded), domains one after another, and rows are dealt
into global batches; a rank takes its slice, as in training. The last global batch is completed
with padding rows (no targets) so every rank runs the same number of steps. Rows are produced
lazily, so `max_batches` bounds the work however large the held-out set is.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from infir.tokenize.packing import IGNORE_INDEX, pack_row
from infir.tokenize.shards import ShardSet, read_index

Row = tuple[np.ndarray, np.ndarray, np.ndarray]


class ValidationBatches:
    """Finite, repeatable iterable of this rank's validation batches (same keys as training batches)."""

    def __init__(
        self,
        tokenize_dir: Path,
        seq_len: int,
        global_batch_size: int,
        rank: int = 0,
        world_size: int = 1,
        domains: list[str] | None = None,
        max_batches: int | None = None,
        verify: bool = True,
    ):
        if global_batch_size % world_size:
            raise ValueError(
                f"global_batch_size {global_batch_size} is not divisible by world_size {world_size}"
            )
        shards_dir = Path(tokenize_dir) / "shards"
        index = read_index(shards_dir)
        self.pad_id = int(index["pad_id"])
        self.seq_len, self.global_batch_size = seq_len, global_batch_size
        self.rank, self.batch_size = rank, global_batch_size // world_size
        names = sorted(index["domains"]) if domains is None else domains
        self.sets = [ShardSet.open(shards_dir, d, "val", verify=verify) for d in names]
        rows = sum(math.ceil(s.n_tokens / seq_len) for s in self.sets)
        batches = math.ceil(rows / global_batch_size)
        self._len = batches if max_batches is None else min(batches, max_batches)

    def _rows(self, shard_set: ShardSet) -> Iterator[Row]:
        fragments, used = [], 0
        for doc in range(shard_set.n_docs):
            start, length = 0, int(shard_set.doc_len[doc])
            while start < length:
                take = min(length - start, self.seq_len - used)
                fragments.append(shard_set.doc_tokens(doc, start, start + take))
                start, used = start + take, used + take
                if used == self.seq_len:
                    yield pack_row(fragments, self.seq_len)
                    fragments, used = [], 0
        if fragments:
            yield pack_row(fragments, self.seq_len, self.pad_id)

    def __len__(self) -> int:
        return self._len

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        rows = itertools.chain(
            itertools.chain.from_iterable(self._rows(s) for s in self.sets),
            itertools.repeat(pack_row([], self.seq_len, self.pad_id)),
        )
        for _ in range(self._len):
            batch = list(itertools.islice(rows, self.global_batch_size))
            mine = batch[self.rank * self.batch_size : (self.rank + 1) * self.batch_size]
            ids, pos, labels = (np.stack(col) for col in zip(*mine))
            yield {
                "input_ids": torch.from_numpy(ids),
                "labels": torch.from_numpy(labels),
                "position_ids": torch.from_numpy(pos),
            }

    def target_tokens(self) -> int:
        """Tokens scored on one pass over this rank's batches."""
        return sum(int((b["labels"] != IGNORE_INDEX).sum()) for b in self)
