"""The rows a generator decodes together: one KV cache, a left-padded attention mask, positions, tokens.

Rows leave the batch the step they finish (their cache rows are dropped), and new prompts join it as
soon as slots free up: their prompt is prefilled on its own, then its cache is left-padded (or the
running batch's is) to a common width and stacked on. Positions are explicit, so padding never shifts a
row's rotary positions; padded columns are masked, so they never change what a row attends to. Leading
columns that no remaining row attends to are cropped away.
"""

from __future__ import annotations

import functools
import inspect

import torch
import torch.nn.functional as F


def cache_kwarg(model) -> str:
    """The forward argument that takes the KV cache: transformers renamed `past_key_values` to `cache`
    during 5.x (the old name stays a deprecated alias for a while), and an older model silently takes
    an unknown `cache=` as a keyword it ignores, decoding every step without its context."""
    return _cache_kwarg_of(type(model))


@functools.lru_cache(maxsize=None)
def _cache_kwarg_of(cls) -> str:
    try:
        params = inspect.signature(cls.forward).parameters
    except (AttributeError, TypeError, ValueError):
        return "past_key_values"
    return "cache" if "cache" in params else "past_key_values"


def mergeable(cache) -> bool:
    """Only plain full-attention layers can be padded and stacked (not sliding-window or static ones)."""
    from transformers.cache_utils import DynamicLayer

    return all(type(layer) is DynamicLayer for layer in getattr(cache, "layers", [None]))


class RunningBatch:
    def __init__(self, cache, mask: torch.Tensor, next_pos: torch.Tensor, rows: list[int]):
        self.cache = cache
        self.mask = mask  # (rows, columns): 1 where a row attends
        self.next_pos = next_pos  # (rows, 1): position of the token fed next
        self.rows = rows  # which request each row serves
        self.tokens: torch.Tensor | None = None  # (rows,): the token fed next

    @classmethod
    @torch.inference_mode()
    def prefill(cls, model, prompts: list[list[int]], rows: list[int], pad_id: int, device) -> tuple:
        """Run the prompts (left-padded) through the model; returns the batch and its next-token logits."""
        from transformers import DynamicCache

        width = max(len(p) for p in prompts)
        input_ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for r, ids in enumerate(prompts):  # left padding keeps every row's last token in the last column
            input_ids[r, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
            mask[r, width - len(ids) :] = 1
        input_ids, mask = input_ids.to(device), mask.to(device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = DynamicCache(config=model.config)
        out = model(
            input_ids=input_ids,
            attention_mask=mask,
            position_ids=positions,
            use_cache=True,
            logits_to_keep=1,
            **{cache_kwarg(model): cache},
        )
        return cls(cache, mask, positions[:, -1:] + 1, list(rows)), out.logits[:, -1, :]

    def __len__(self) -> int:
        return len(self.rows)

    def keep(self, keep: list[int], tokens: torch.Tensor) -> None:
        """Keep the rows at positions `keep`, each to be fed its entry of `tokens` next."""
        if len(keep) < len(self.rows):
            index = torch.tensor(keep, dtype=torch.long, device=self.mask.device)
            if keep:
                self.cache.batch_select_indices(index)
            self.mask, self.next_pos, tokens = self.mask[index], self.next_pos[index], tokens[index]
            self.rows = [self.rows[j] for j in keep]
            self._crop()
        self.tokens = tokens

    def _crop(self) -> None:
        attended = self.mask.any(dim=0).nonzero()
        first = int(attended[0]) if len(attended) else 0
        if first > 0:
            self.mask = self.mask[:, first:]
            for layer in self.cache.layers:
                layer.keys, layer.values = layer.keys[..., first:, :], layer.values[..., first:, :]

    def _pad_left(self, width: int) -> None:
        extra = width - self.mask.shape[1]
        if extra > 0:
            self.mask = F.pad(self.mask, (extra, 0))
            for layer in self.cache.layers:
                layer.keys = F.pad(layer.keys, (0, 0, extra, 0))
                layer.values = F.pad(layer.values, (0, 0, extra, 0))

    def extend(self, other: "RunningBatch") -> None:
        """Stack `other`'s rows under ours (both already have their next tokens)."""
        width = max(self.mask.shape[1], other.mask.shape[1])
        self._pad_left(width)
        other._pad_left(width)
        for mine, theirs in zip(self.cache.layers, other.cache.layers):
            mine.keys = torch.cat([mine.keys, theirs.keys])
            mine.values = torch.cat([mine.values, theirs.values])
        self.mask = torch.cat([self.mask, other.mask])
        self.next_pos = torch.cat([self.next_pos, other.next_pos])
        self.tokens = torch.cat([self.tokens, other.tokens])
        self.rows += other.rows

    @torch.inference_mode()
    def step(self, model) -> torch.Tensor:
        """Feed every row its next token; returns the logits for the token after."""
        self.mask = torch.cat([self.mask, self.mask.new_ones((len(self.rows), 1))], dim=1)
        out = model(
            input_ids=self.tokens[:, None],
            attention_mask=self.mask,
            position_ids=self.next_pos,
            use_cache=True,
            **{cache_kwarg(model): self.cache},
        )
        self.next_pos = self.next_pos + 1
        return out.logits[:, -1, :]
