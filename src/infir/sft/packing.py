"""Tokenized conversations, best-fit-decreasing packing, and a deterministic resumable batch source.

Each conversation is rendered with the tokenizer's chat template; the loss mask is the template's
own assistant mask (`{% generation %}` spans, end-of-turn included), never a fallback to all tokens.
Packed rows hold several conversations; position ids restart at each one, which transformers turns
into a block-diagonal causal mask, so no conversation attends to another. Padding forms its own
run of positions and carries no loss.
"""

from __future__ import annotations

import bisect
import heapq
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class Example:
    input_ids: list[int]
    labels: list[int]  # -100 outside assistant tokens


def encode_conversation(tokenizer, messages: list[dict]) -> Example:
    out = tokenizer.apply_chat_template(
        messages, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
    )
    ids = list(out["input_ids"])
    mask = list(out.get("assistant_masks") or [])
    if len(mask) != len(ids) or not any(mask):
        raise ValueError(
            "the chat template marks no assistant tokens ({% generation %} missing?); "
            "refusing to train on all tokens"
        )
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


def best_fit_decreasing(lengths, capacity: int) -> list[list[int]]:
    """Bins of example indices; each item goes to the fullest bin it still fits in (the lowest bin id
    among equally full ones). Bins are kept in buckets by remaining capacity, so an item costs a
    search over the distinct remaining capacities (at most `capacity` of them), not over the bins."""
    lengths = np.asarray(lengths, dtype=np.int64)
    if len(lengths) and int(lengths.max()) > capacity:
        i = int(np.argmax(lengths > capacity))
        raise ValueError(f"example {i} has {int(lengths[i])} tokens, more than the row length {capacity}")
    order = np.lexsort((np.arange(len(lengths)), -lengths))  # longest first, then by index
    bins: list[list[int]] = []
    buckets: dict[int, list[int]] = {}  # remaining capacity -> heap of bin ids
    remaining_values: list[int] = []  # sorted distinct keys of `buckets`
    for i in order.tolist():
        need = int(lengths[i])
        k = bisect.bisect_left(remaining_values, need)
        if k < len(remaining_values):
            left = remaining_values[k]
            b = heapq.heappop(buckets[left])
            if not buckets[left]:
                del buckets[left]
                remaining_values.pop(k)
            bins[b].append(i)
            left -= need
        else:
            b, left = len(bins), capacity - need
            bins.append([i])
        if left not in buckets:
            buckets[left] = []
            bisect.insort(remaining_values, left)
        heapq.heappush(buckets[left], b)
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

    def __init__(
        self,
        examples: Sequence[Example],
        seq_len: int,
        global_batch_size: int,
        seed: int,
        pad_id: int,
        packing: bool = True,
        rank: int = 0,
        world_size: int = 1,
        rows: list[list[int]] | None = None,
    ):
        """`examples`: a list, or an `EncodedConversations` (with its `lengths`); `rows`: the packed rows
        when they were computed once for all ranks."""
        if global_batch_size % world_size:
            raise ValueError(f"global batch {global_batch_size} is not divisible by {world_size} ranks")
        if not len(examples):
            raise ValueError("no SFT examples to train on")
        self.examples, self.seq_len, self.pad_id, self.packing = examples, seq_len, pad_id, packing
        self.global_batch, self.seed, self.rank, self.world = global_batch_size, seed, rank, world_size
        lengths = examples.lengths if hasattr(examples, "lengths") else [len(e.input_ids) for e in examples]
        self.lengths = np.asarray(lengths, dtype=np.int64)
        if rows is None:
            rows = (
                best_fit_decreasing(self.lengths, seq_len) if packing else [[i] for i in range(len(examples))]
            )
        self.rows = rows
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
        rows = [
            [self.examples[i] for i in self.rows[self._row_index(p)]] for p in range(start, start + per_rank)
        ]
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
            raise ValueError(
                "SFT data changed since the checkpoint (row count or seed differ); cannot resume exactly"
            )
        self.step = int(state["step"])

    def padding_share(self) -> float:
        """Share of padding tokens over the first epoch, in the order training visits the rows."""
        used = int(self.lengths.sum())
        if self.packing:
            return 1 - used / (len(self.rows) * self.seq_len)
        lengths = self.lengths[[r[0] for r in self.rows]]
        order = lengths[np.random.default_rng([self.seed, 0]).permutation(len(self.rows))]
        pad = 0
        for s in range(0, len(order), self.global_batch):
            chunk = order[s : s + self.global_batch]
            pad += int(chunk.max()) * len(chunk) - int(chunk.sum())
        return pad / (pad + used)
