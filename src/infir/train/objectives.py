"""What the trainer minimises: the `Objective` protocol and the default, next-token cross-entropy.

An objective runs the model on a micro-batch (`forward`: for a language model, its logits) and turns what
it returns into a summed loss (`loss_sum`); the trainer divides by `count` of the whole global batch
(summed over ranks), so 1 or N ranks and any accumulation give the same update. The implementations:
next-token cross-entropy here (pretraining, annealing, SFT, the VL curriculum), RL's policy-gradient loss
(`infir.rl.grpo.GRPOObjective`) and the image-text filter's contrastive loss
(`infir.vl.filter.ContrastiveObjective`).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
import torch.nn.functional as F


# The batch keys a causal LM (or LLaVA) takes as inputs; the rest (labels, advantages...) feed the loss.
MODEL_KEYS = ("input_ids", "position_ids", "pixel_values", "image_sizes")


@runtime_checkable
class Objective(Protocol):
    def forward(self, model, micro: dict, device: torch.device) -> torch.Tensor:
        """What the loss reads from the model for one micro-batch (the trainer calls it under autocast)."""

    def count(self, batch: dict) -> float:
        """The normaliser of this rank's share of the global batch (e.g. its number of target tokens)."""

    def loss_sum(self, outputs: torch.Tensor, micro: dict) -> torch.Tensor:
        """The summed (not averaged) loss of one micro-batch, from what `forward` returned."""

    def pop_metrics(self) -> dict:
        """Extra values to log for the step just taken (and reset): {} when there are none."""


def language_model_logits(model, micro: dict, device: torch.device) -> torch.Tensor:
    inputs = {k: v.to(device, non_blocking=True) for k, v in micro.items() if k in MODEL_KEYS}
    return model(**inputs, use_cache=False).logits


class LanguageModelObjective:
    """An objective on a language model's logits: `forward` is the model's forward pass."""

    def forward(self, model, micro: dict, device: torch.device) -> torch.Tensor:
        return language_model_logits(model, micro, device)


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


class TokenCrossEntropy(LanguageModelObjective):
    """The default objective: next-token cross-entropy, averaged over the global batch's target tokens."""

    def count(self, batch: dict) -> float:
        return float(count_targets(batch["labels"]))

    def loss_sum(self, logits: torch.Tensor, micro: dict) -> torch.Tensor:
        return token_loss_sum(logits, micro["labels"].to(logits.device))

    def pop_metrics(self) -> dict:
        return {}
