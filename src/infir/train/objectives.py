"""What the trainer minimises: the `Objective` protocol and the default, next-token cross-entropy.

An objective turns a micro-batch's logits into a summed loss; the trainer divides by `count` of the whole
global batch (summed over ranks), so 1 or N ranks and any accumulation give the same update. RL's
policy-gradient loss (`infir.rl.grpo.GRPOObjective`) is the other implementation.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
import torch.nn.functional as F


@runtime_checkable
class Objective(Protocol):
    def count(self, batch: dict) -> float:
        """The normaliser of this rank's share of the global batch (e.g. its number of target tokens)."""

    def loss_sum(self, logits: torch.Tensor, micro: dict) -> torch.Tensor:
        """The summed (not averaged) loss of one micro-batch."""

    def pop_metrics(self) -> dict:
        """Extra values to log for the step just taken (and reset): {} when there are none."""


def token_loss_sum(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Sum of next-token cross-entropies; labels follow the HF convention (shifted here)."""
    # Shift the labels, not the logits: slicing [B, T, V] logits copies them (tens of MB per micro-batch);
    # the last position gets the ignore label instead.
    shift_labels = F.pad(labels[:, 1:], (0, 1), value=-100)
    return F.cross_entropy(
        logits.float().reshape(-1, logits.size(-1)),
        shift_labels.reshape(-1),
        ignore_index=-100,
        reduction="sum",
    )


def count_targets(labels: torch.Tensor) -> int:
    return int((labels[:, 1:] != -100).sum())


class TokenCrossEntropy:
    """The default objective: next-token cross-entropy, averaged over the global batch's target tokens."""

    def count(self, batch: dict) -> float:
        return float(count_targets(batch["labels"]))

    def loss_sum(self, logits: torch.Tensor, micro: dict) -> torch.Tensor:
        return token_loss_sum(logits, micro["labels"].to(logits.device))

    def pop_metrics(self) -> dict:
        return {}
