"""Tokenized conversations, best-fit-decreasing packing, and a deterministic resumable batch source.

Each conversation is rendered with the tokenizer's chat template; the loss mask is the template's
own assistant mask (`{% generation %}` spans, end-of-turn included), never a fallback to all tokens.
Packed rows hold several conversations; position ids restart at each one, which transformers turns
into a block-diagonal causal mask, so no conversation attends to another. Padding forms its own
run of positions and carries no loss.
"""

from __future__ import annotations

import bisect
import math
from collections import Counter
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class Example:
    input_ids: list[int]
    labels: list[int]  # -100 outside assistant tokens


def encode_conversation(tokenizer, messages: list[dict]) -> Example:
    out = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    ids = list(out["input_ids"])
    mask = list(out.get("assistant_masks") or [])
    if len(mask) != len(ids) or not any(mask):
        raise ValueError("the chat template marks no assistant tokens ({% generation %} missing?); "
                         "refusing to train on all tokens")
    return Example(ids, [t if m else -100 for t, m in zip(ids, mask)])


def encode_all(tokenizer, conversations: list[list[dict]], max_tokens: int) -> tuple[list[Example], Counter]:
    examples, dropped = [], Counter()
    for messages in conversations:
        ex = encode_conversation(tokenizer, messages)
        if len(ex.input_ids) > max_tokens:
            dropped["too_long"] += 1
            continue
        examples.append(ex)
    return examples, dropped


def best_fit_decreasing(lengths: list[int], capacity: int) -> list[list[int]]:
    """Bins of example indices; each item goes to the fullest bin it still fits in."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    bins: list[list[int]] = []
    free: list[tuple[int, int]] = []  # sorted (remaining capacity, bin id)
    for i in order:
        need = lengths[i]
        if need > capacity:
            raise ValueError(f"example {i} has {need} tokens, more than the row length {capacity}")
        k = bisect.bisect_left(free, (need, -1))
        if k < len(free):
            remaining, b = free.pop(k)
            bins[b].append(i)
            bisect.insort(free, (remaining - need, b))
        else:
            bins.append([i])
            bisect.insort(free, (capacity - need, len(bins) - 1))
    return bins


def build_row(examples: list[Example], length: int, pad_id: int) -> dict[str, list[int]]:
    ids, labels, pos = [], [], []
    for ex in examples:
        ids += ex.input_ids
        labels += ex.labels
        pos += list(range(len(ex.input_ids)))
    pad = length - len(ids)
    ids += [pad_id] * pad
    labels += [-100] * pad
    pos += list(range(pad))
    return {"input_ids": ids, "labels": labels, "position_ids": pos}


class ConversationBatches:
    """Rows (packed bins or single conversations) streamed over epochs.

    Global batch k holds rows [k*G, (k+1)*G) of the stream; the stream visits the rows in a
    permutation per epoch seeded by (seed, epoch). Rank r takes its contiguous slice. The order is a
    pure function of (seed, step), whatever the number of ranks, and resume only needs `step`.
    """

    def __init__(self, examples: list[Example], seq_len: int, global_batch_size: int, seed: int, pad_id: int,
                 packing: bool = True, rank: int = 0, world_size: int = 1):
        if global_batch_size % world_size:
            raise ValueError(f"global batch {global_batch_size} is not divisible by {world_size} ranks")
        if not examples:
            raise ValueError("no SFT examples to train on")
        self.examples, self.seq_len, self.pad_id, self.packing = examples, seq_len, pad_id, packing
        self.global_batch, self.seed, self.rank, self.world = global_batch_size, seed, rank, world_size
        lengths = [len(e.input_ids) for e in examples]
        self.rows = best_fit_decreasing(lengths, seq_len) if packing else [[i] for i in range(len(examples))]
        self.step = 0

    @property
    def steps_per_epoch(self) -> float:
        return len(self.rows) / self.global_batch

    def steps_for(self, epochs: float) -> int:
        return max(1, math.ceil(len(self.rows) * epochs / self.global_batch))

    def _row_index(self, position: int) -> int:
        epoch, offset = divmod(position, len(self.rows))
        perm = np.random.default_rng([self.seed, epoch]).permutation(len(self.rows))
        return int(perm[offset])

    def batch_at(self, step: int) -> dict[str, torch.Tensor]:
        per_rank = self.global_batch // self.world
        start = step * self.global_batch + self.rank * per_rank
        rows = [[self.examples[i] for i in self.rows[self._row_index(p)]] for p in range(start, start + per_rank)]
        length = self.seq_len if self.packing else max(sum(len(e.input_ids) for e in r) for r in rows)
        built = [build_row(r, length, self.pad_id) for r in rows]
        return {k: torch.tensor([b[k] for b in built], dtype=torch.long) for k in built[0]}

    def __iter__(self):
        while True:
            batch = self.batch_at(self.step)
            self.step += 1
            yield batch

    def state_dict(self) -> dict:
        return {"step": self.step, "seed": self.seed, "rows": len(self.rows)}

    def load_state_dict(self, state: dict) -> None:
        if state.get("rows") != len(self.rows) or state.get("seed") != self.seed:
            raise ValueError("SFT data changed since the checkpoint (row count or seed differ); cannot resume exactly")
        self.step = int(state["step"])

    def padding_share(self) -> float:
        used = sum(len(e.input_ids) for e in self.examples)
        if self.packing:
            return 1 - used / (len(self.rows) * self.seq_len)
        # unpacked rows pad to the longest row of their batch; estimate over one epoch in order
        pad = 0
        for s in range(0, len(self.rows), self.global_batch):
            chunk = [len(self.examples[r[0]].input_ids) for r in self.rows[s:s + self.global_batch]]
            pad += max(chunk) * len(chunk) - sum(chunk)
        return pad / (pad + used)
