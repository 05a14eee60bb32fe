"""Next-token choice: greedy argmax, or temperature / top-k / top-p sampling from a seeded generator."""

from __future__ import annotations

import torch


class Sampler:
    def __init__(
        self,
        temperature: float = 0.0,
        top_p: float = 1.0,
        top_k: int = 0,
        seed: int = 0,
        device: torch.device | str = "cpu",
    ):
        if temperature < 0 or not 0 < top_p <= 1 or top_k < 0:
            raise ValueError(
                f"bad sampling settings: temperature={temperature}, top_p={top_p}, top_k={top_k}"
            )
        self.temperature, self.top_p, self.top_k = temperature, top_p, top_k
        self.generator = None
        if temperature > 0:
            self.generator = torch.Generator(device=device)
            self.generator.manual_seed(seed)

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        """One token id per row of `logits` (rows x vocab)."""
        if self.greedy:
            return logits.argmax(dim=-1)
        logits = logits.float() / self.temperature
        if self.top_k:
            kth = torch.topk(logits, min(self.top_k, logits.shape[-1]), dim=-1).values[:, -1:]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        if self.top_p < 1.0:
            sorted_logits, sorted_idx = torch.sort(logits, descending=True, dim=-1)
            probs = sorted_logits.softmax(dim=-1)
            # Drop a token when the tokens ranked above it already hold top_p of the mass.
            drop = probs.cumsum(dim=-1) - probs > self.top_p
            sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
            logits = torch.full_like(logits, float("-inf")).scatter(-1, sorted_idx, sorted_logits)
        return self.draw(logits.softmax(dim=-1))

    def draw(self, probs: torch.Tensor) -> torch.Tensor:
        """One index per row, drawn with probability `probs` (rows x vocab, rows summing to 1).

        Inverse-CDF sampling: one uniform per row against the running sum. `torch.multinomial` draws
        an exponential variate for every vocabulary entry of every row, a large share of a decoding
        step of a small model on CPU; this costs one cumulative sum. A zero-probability (top-k /
        top-p masked) entry does not raise the running sum, so no draw lands on it; the one exception,
        u * total rounding up to the total (odds ~1e-7), falls back to the likeliest entry.
        """
        cdf = probs.float().cumsum(dim=-1)
        u = torch.rand((probs.shape[0], 1), generator=self.generator, device=probs.device, dtype=cdf.dtype)
        idx = torch.searchsorted(cdf, u * cdf[:, -1:], right=True).clamp_(max=probs.shape[-1] - 1)
        miss = probs.gather(-1, idx) <= 0
        if miss.any():
            idx = torch.where(miss, probs.argmax(dim=-1, keepdim=True), idx)
        return idx.squeeze(-1)
