"""The packing mixture loader: deterministic, resumable, the same for any workers and ranks.

Sequence i of the run (global index `i = step * global_batch_size + j`) is a pure function of
(seed, i):
  1. *Which shard set.* Sequences are dealt in blocks of `BLOCK` = 16384: each block holds every
     set exactly its weight's share (largest remainder), in a seeded random order. So the k-th
     sequence a set contributes is known in closed form, and the mix is exact over every block.
  2. *Which tokens.* Each set is an endless stream: epoch e is its documents in a seeded random
     permutation (documents already end with end-of-text), and its k-th sequence is stream tokens
     [k*seq_len, (k+1)*seq_len), split at document boundaries into fragments (`packing.pack_row`).
A rank takes its slice of each global batch; DataLoader workers take whole steps round-robin,
which torch yields back in order. Nothing depends on history, so `state_dict()` is the step
number and resume is exact.
"""

from __future__ import annotations

import json
import zlib
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from infir.tokenize.packing import pack_row
from infir.tokenize.shards import ShardSet

BLOCK = 1 << 14


def _rng(seed: int, *parts: int | str) -> np.random.Generator:
    words = [seed] + [zlib.crc32(p.encode()) if isinstance(p, str) else p for p in parts]
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(words)))


def block_counts(weights: dict[str, float], block: int = BLOCK) -> dict[str, int]:
    """Sequences per block for each set: the largest-remainder rounding of block * weight share."""
    names = sorted(weights)
    w = np.array([weights[n] for n in names], dtype=np.float64)
    if np.any(w < 0) or w.sum() <= 0:
        raise ValueError(f"mixture weights must be >= 0 with a positive sum, got {weights}")
    quota = w / w.sum() * block
    counts = np.floor(quota).astype(np.int64)
    order = sorted(range(len(names)), key=lambda i: (-(quota[i] - counts[i]), i))
    for i in order[: block - int(counts.sum())]:
        counts[i] += 1
    too_small = [n for n, c, x in zip(names, counts, w) if x > 0 and c == 0]
    if too_small:
        raise ValueError(f"mixture weights of {too_small} are below 1/{block} of the total")
    return dict(zip(names, counts.tolist()))


class MixtureSchedule:
    """Maps a global sequence index to (set index, that set's sequence number)."""

    def __init__(self, weights: dict[str, float], seed: int):
        counts = block_counts(weights)
        self.names = [n for n in sorted(counts) if counts[n] > 0]
        self.counts = np.array([counts[n] for n in self.names], dtype=np.int64)
        self.seed = seed
        self._cache: OrderedDict[int, tuple[np.ndarray, np.ndarray]] = OrderedDict()

    @property
    def effective_weights(self) -> dict[str, float]:
        return {n: c / BLOCK for n, c in zip(self.names, self.counts.tolist())}

    def _block(self, b: int) -> tuple[np.ndarray, np.ndarray]:
        if b not in self._cache:
            dealt = np.repeat(np.arange(len(self.names)), self.counts)
            sets = _rng(self.seed, "mixture", b).permutation(dealt)
            rank_in_block = np.empty(BLOCK, dtype=np.int64)
            for s in range(len(self.names)):
                where = np.flatnonzero(sets == s)
                rank_in_block[where] = np.arange(len(where))
            self._cache[b] = (sets, b * self.counts[sets] + rank_in_block)
            while len(self._cache) > 4:
                self._cache.popitem(last=False)
        return self._cache[b]

    def lookup(self, i: int) -> tuple[int, int]:
        sets, seq = self._block(i // BLOCK)
        return int(sets[i % BLOCK]), int(seq[i % BLOCK])


class DocumentStream:
    """A shard set as an endless token stream: each epoch its documents in a fresh seeded order."""

    def __init__(self, shard_set: ShardSet, seed: int):
        if shard_set.n_tokens == 0:
            raise ValueError(f"shard set {shard_set.name!r} has no tokens")
        self.set, self.seed = shard_set, seed
        self.epoch_tokens = shard_set.n_tokens
        self._epochs: OrderedDict[int, tuple[np.ndarray, np.ndarray]] = OrderedDict()

    def _epoch(self, e: int) -> tuple[np.ndarray, np.ndarray]:
        if e not in self._epochs:
            perm = _rng(self.seed, "epoch", self.set.name, e).permutation(self.set.n_docs)
            cum = np.zeros(len(perm) + 1, dtype=np.int64)
            np.cumsum(self.set.doc_len[perm], out=cum[1:])
            self._epochs[e] = (perm, cum)
            while len(self._epochs) > 2:
                self._epochs.popitem(last=False)
        return self._epochs[e]

    def fragments(self, start: int, length: int) -> list[np.ndarray]:
        """Stream tokens [start, start+length), cut at document ends."""
        out = []
        epoch, offset = divmod(start, self.epoch_tokens)
        perm, cum = self._epoch(epoch)
        j = int(np.searchsorted(cum, offset, side="right")) - 1
        while length > 0:
            doc = int(perm[j])
            within = offset - int(cum[j])
            take = min(int(self.set.doc_len[doc]) - within, length)
            out.append(self.set.doc_tokens(doc, within, within + take))
            length -= take
            offset += take
            if offset == self.epoch_tokens:
                epoch, offset, j = epoch + 1, 0, 0
                perm, cum = self._epoch(epoch)
            elif offset == cum[j + 1]:
                j += 1
        return out


class PackedMixtureLoader:
    """Iterable of this rank's batches: `{"input_ids", "labels", "position_ids"}`, LongTensor[B, seq_len].

    B = global_batch_size / world_size; concatenating the ranks' batches of a step in rank order gives
    the global batch, whatever the world size or number of workers. Iteration is endless and starts
    at the current step; `state_dict()` after n batches resumes at batch n.
    """

    def __init__(
        self,
        shard_sets: dict[str, ShardSet],
        weights: dict[str, float],
        seq_len: int,
        global_batch_size: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        num_workers: int = 0,
    ):
        if global_batch_size % world_size:
            raise ValueError(
                f"global_batch_size {global_batch_size} is not divisible by world_size {world_size}"
            )
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world_size {world_size}")
        missing = [n for n, w in weights.items() if w > 0 and n not in shard_sets]
        if missing:
            raise ValueError(
                f"mixture weights name shard sets {missing} that were not given (have {sorted(shard_sets)})"
            )
        self.seq_len, self.global_batch_size, self.seed = seq_len, global_batch_size, seed
        self.rank, self.world_size, self.num_workers = rank, world_size, num_workers
        self.batch_size = global_batch_size // world_size
        self.schedule = MixtureSchedule({n: w for n, w in weights.items() if w > 0}, seed)
        self.streams = [DocumentStream(shard_sets[n], seed) for n in self.schedule.names]
        self.step = 0

    @property
    def weights(self) -> dict[str, float]:
        return self.schedule.effective_weights

    def sequence(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Global sequence i as (input_ids, position_ids, labels)."""
        s, k = self.schedule.lookup(i)
        return pack_row(self.streams[s].fragments(k * self.seq_len, self.seq_len), self.seq_len)

    def batch(self, step: int) -> dict[str, torch.Tensor]:
        """This rank's share of the global batch of `step`."""
        first = step * self.global_batch_size + self.rank * self.batch_size
        rows = [self.sequence(i) for i in range(first, first + self.batch_size)]
        ids, pos, labels = (np.stack(col) for col in zip(*rows))
        return {
            "input_ids": torch.from_numpy(ids),
            "labels": torch.from_numpy(labels),
            "position_ids": torch.from_numpy(pos),
        }

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        if self.num_workers == 0:
            source = (self.batch(step) for step in _count(self.step))
        else:
            source = iter(
                torch.utils.data.DataLoader(
                    _StepBatches(self, self.step),
                    batch_size=None,
                    num_workers=self.num_workers,
                    prefetch_factor=4,
                )
            )
        for batch in source:
            self.step += 1
            yield batch

    def state_dict(self) -> dict:
        return {
            "step": self.step,
            "seed": self.seed,
            "seq_len": self.seq_len,
            "global_batch_size": self.global_batch_size,
            "weights": self.weights,
            "epoch_tokens": {n: s.epoch_tokens for n, s in zip(self.schedule.names, self.streams)},
        }

    def load_state_dict(self, state: dict) -> None:
        """Resume at `state["step"]`; refuses a state from different data, seed, lengths or mix.

        The world size may differ: global batches do not depend on it.
        """
        mine = self.state_dict()
        for key in ("seed", "seq_len", "global_batch_size", "weights", "epoch_tokens"):
            if state.get(key) != mine[key]:
                raise ValueError(
                    f"loader state does not match this loader: {key} is {state.get(key)!r} "
                    f"in the checkpoint, {mine[key]!r} here"
                )
        self.step = int(state["step"])


def _count(start: int) -> Iterator[int]:
    step = start
    while True:
        yield step
        step += 1


class _StepBatches(torch.utils.data.IterableDataset):
    """Worker w of n computes steps start+w, start+w+n, ...; torch returns them round-robin, in order."""

    def __init__(self, loader: PackedMixtureLoader, start: int):
        self.loader, self.start = loader, start

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        step = self.start + worker
        while True:
            yield self.loader.batch(step)
            step += workers


# ---- reading the tokenize stage's output ---------------------------------------------------------
LOADER_FILE = "loader.json"  # {"seq_len": default sequence length, "mixtures": {mix: {domain: weight}}}


def read_loader_defaults(tokenize_dir: Path) -> dict:
    path = Path(tokenize_dir) / LOADER_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path}: no loader settings (has the tokenize stage completed?)")
    return json.loads(path.read_text())


def read_mixtures(tokenize_dir: Path) -> dict[str, dict[str, float]]:
    return read_loader_defaults(tokenize_dir)["mixtures"]


def build_loader(
    tokenize_dir: Path,
    mix: str,
    seq_len: int | None,
    global_batch_size: int,
    seed: int,
    rank: int = 0,
    world_size: int = 1,
    num_workers: int = 0,
    verify: bool = True,
) -> PackedMixtureLoader:
    """The training loader of mixture `mix` ("pretrain", "anneal", ...) over the stage's train split.

    `seq_len` None takes the stage's `tokenize.seq_len`. `num_workers` 0 is usually right: packing
    is numpy slicing, far faster than any training step, and workers add inter-process copies.
    """
    tokenize_dir = Path(tokenize_dir)
    defaults = read_loader_defaults(tokenize_dir)
    mixtures = defaults["mixtures"]
    if mix not in mixtures:
        raise KeyError(f"{tokenize_dir / LOADER_FILE}: no mixture {mix!r}; it has {sorted(mixtures)}")
    weights = {d: w for d, w in mixtures[mix].items() if w > 0}
    sets = {d: ShardSet.open(tokenize_dir / "shards", d, "train", verify=verify) for d in weights}
    return PackedMixtureLoader(
        sets,
        weights,
        seq_len or int(defaults["seq_len"]),
        global_batch_size,
        seed,
        rank,
        world_size,
        num_workers,
    )
