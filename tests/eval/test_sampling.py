"""The sampler draws tokens with the probabilities the settings define, reproducibly per seed."""

from __future__ import annotations

import pytest
import torch

from infir.eval.sampling import Sampler


def _counts(sampler: Sampler, logits: torch.Tensor, draws: int) -> torch.Tensor:
    rows = logits.expand(draws, -1).contiguous()
    return torch.bincount(sampler(rows), minlength=logits.shape[-1]).double()


def test_frequencies_match_the_tempered_softmax():
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0, 0.5]])
    counts = _counts(Sampler(temperature=0.7, seed=3), logits, 200_000)
    want = (logits[0] / 0.7).softmax(-1).double()
    # chi-square with 4 degrees of freedom: 0.999 quantile is 18.5
    chi2 = float(((counts - 200_000 * want) ** 2 / (200_000 * want)).sum())
    assert chi2 < 18.5, (counts / 200_000, want)


@pytest.mark.parametrize("settings", [{"top_k": 2}, {"top_p": 0.6}])
def test_masked_tokens_are_never_drawn(settings):
    logits = torch.tensor([[3.0, 2.5, 0.0, -1.0, 0.2, 0.1]])
    counts = _counts(Sampler(temperature=1.0, seed=0, **settings), logits, 50_000)
    assert counts[:2].sum() == 50_000 and counts[0] > counts[1] > 0


def test_a_draw_never_lands_on_a_zero_probability_entry():
    probs = torch.zeros(4096, 8, dtype=torch.float32)
    probs[:, 5] = 1.0  # the whole mass on one entry, after zeros that do not raise the running sum
    probs[::2, 7] = 1e-30
    probs = probs / probs.sum(-1, keepdim=True)
    drawn = Sampler(temperature=1.0, seed=1).draw(probs)
    assert set(drawn.tolist()) <= {5, 7} and (probs.gather(-1, drawn[:, None]) > 0).all()


def test_same_seed_same_tokens_other_seed_other_tokens():
    logits = torch.randn(64, 100, generator=torch.Generator().manual_seed(0))
    a, b, c = (Sampler(temperature=1.0, seed=s)(logits) for s in (5, 5, 6))
    assert torch.equal(a, b) and not torch.equal(a, c)
