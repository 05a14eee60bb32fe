"""GRPO: group-relative advantages and the clipped policy-gradient loss, as the trainer's objective.

For each prompt the policy samples G completions with rewards r_1..r_G. A completion's advantage is
its reward against its group's (Shao et al., 2024):

    A_i = (r_i - mean(r)) / (std(r) + eps)          (advantage: grpo)
    A_i =  r_i - mean(r)                            (advantage: dr_grpo, Liu et al., 2025)

and every token t of completion i gets the PPO-clipped surrogate with an optional KL penalty to a
frozen reference policy (the k3 estimator, always >= 0):

    ratio = exp(logp - logp_old)
    loss_t = -min(ratio * A_i, clip(ratio, 1 - eps_low, 1 + eps_high) * A_i) + beta * k3
    k3 = exp(logp_ref - logp) - (logp_ref - logp) - 1

Aggregation over the global batch: `token` divides the sum over all completion tokens by their number
(DAPO); `sequence` averages each completion's tokens, then the completions (the GRPO paper);
`constant` divides the sum by (completions x max_new_tokens) (Dr. GRPO), so long answers are not
down-weighted per token.
"""

from __future__ import annotations

import contextlib
from typing import Literal

import torch
import torch.nn.functional as F

from infir.train.objectives import LanguageModelObjective

Aggregation = Literal["token", "sequence", "constant"]


def group_advantages(
    rewards: torch.Tensor,
    group_size: int,
    scale: bool = True,
    eps: float = 1e-4,
    negative_weight: float = 1.0,
) -> torch.Tensor:
    """Advantages of rewards laid out group after group ([g0 s0, g0 s1, ..., g1 s0, ...]).

    The std is the sample std (n - 1), as TRL and the GRPO reference code compute it; a group whose
    rewards are all equal gets zero advantages (no signal), not a division by zero.
    `negative_weight` scales the advantages of below-average completions: 1 is GRPO, 0 keeps only the
    push towards above-average ones (filtered imitation of the policy's own best samples).
    """
    if rewards.numel() % group_size:
        raise ValueError(f"{rewards.numel()} rewards do not split into groups of {group_size}")
    grouped = rewards.float().view(-1, group_size)
    centred = grouped - grouped.mean(dim=1, keepdim=True)
    if scale:
        centred = centred / (grouped.std(dim=1, keepdim=True) + eps)
    if negative_weight != 1.0:
        centred = torch.where(centred < 0, centred * negative_weight, centred)
    return centred.reshape(-1)


def process_advantages(
    step_rewards: list[list[tuple[int, float]]], group_size: int, eps: float = 1e-4, cumulative: bool = True
) -> list[list[float]]:
    """Per-token advantages from per-step rewards (DeepSeekMath's process supervision, Shao et al. 2024).

    `step_rewards[i]` lists (index of the token ending the step, reward) for completion i, groups laid
    out one after another. Each reward is normalised by the mean and std of all step rewards of its
    group; a token's advantage is the sum of the normalised rewards of the steps ending at or after it
    (tokens after the last step get 0). With `cumulative` False a token gets its own step's normalised
    reward only: a right step before a wrong one is not blamed for it. Returns one list of advantages
    per completion, one per token up to its last step's end.
    """
    if len(step_rewards) % group_size:
        raise ValueError(f"{len(step_rewards)} completions do not split into groups of {group_size}")
    out = []
    for g in range(0, len(step_rewards), group_size):
        group = step_rewards[g : g + group_size]
        flat = torch.tensor([r for steps in group for _, r in steps], dtype=torch.float64)
        mean = float(flat.mean()) if flat.numel() else 0.0
        std = float(flat.std()) if flat.numel() > 1 else 0.0
        for steps in group:
            length = steps[-1][0] + 1 if steps else 0
            adv = [0.0] * length
            running = 0.0
            # walk the steps backwards: a token collects the normalised rewards of its step and all later ones
            bounds = [-1] + [end for end, _ in steps]
            for k in range(len(steps) - 1, -1, -1):
                own = (steps[k][1] - mean) / (std + eps) if std > 0 else 0.0
                running = running + own if cumulative else own
                for t in range(bounds[k] + 1, bounds[k + 1] + 1):
                    adv[t] = running
            out.append(adv)
    return out


def token_logprobs(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """log p(labels[:, t+1] | prefix) for each position, 0 where the label is -100; shape (B, T-1).

    Cross-entropy with reduction="none" avoids materialising the full log-softmax twice.
    """
    return -F.cross_entropy(
        logits[:, :-1].float().transpose(1, 2), labels[:, 1:], ignore_index=-100, reduction="none"
    )


def k3_kl(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Schulman's unbiased, non-negative estimator of KL(policy || reference) per sampled token."""
    delta = ref_logp - logp
    return torch.exp(delta) - delta - 1


def clipped_surrogate(
    logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, clip_low: float, clip_high: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token -min(ratio A, clip(ratio) A) and where the clipped branch is the active one.

    `advantages` is one value per row (broadcast over its tokens) or one per token (the shape of
    `logp`, process advantages). A clipped token has no gradient: the ratio already moved past the
    trust region in the direction its advantage pushes.
    """
    adv = (advantages[:, None] if advantages.dim() == 1 else advantages).to(logp.dtype)
    ratio = torch.exp(logp - old_logp)
    unclipped = ratio * adv
    clipped = ratio.clamp(1 - clip_low, 1 + clip_high) * adv
    loss = -torch.minimum(unclipped, clipped)
    is_clipped = ((ratio > 1 + clip_high) & (adv > 0)) | ((ratio < 1 - clip_low) & (adv < 0))
    return loss, is_clipped


def aggregation_weights(mask: torch.Tensor, aggregation: Aggregation) -> torch.Tensor:
    """Per-token weights whose weighted sum, divided by `normaliser`, is the aggregated loss."""
    weights = mask.float()
    if aggregation == "sequence":
        weights = weights / mask.sum(dim=1, keepdim=True).clamp(min=1)
    return weights


def normaliser(labels: torch.Tensor, aggregation: Aggregation, max_new_tokens: int) -> float:
    mask = labels[:, 1:] != -100
    if aggregation == "token":
        return float(mask.sum())
    rows = float(mask.any(dim=1).sum())
    return rows if aggregation == "sequence" else rows * max_new_tokens


class GRPOObjective(LanguageModelObjective):
    """The trainer's `objective` for GRPO batches.

    A batch (see `rollout.py`) holds `input_ids`, `labels` (completion tokens; -100 elsewhere),
    `position_ids`, `advantages` (one per row) and optionally `old_logprobs` (the rollout policy's,
    needed when one rollout batch feeds several optimizer steps) and `ref_logprobs` (for the KL term).
    Without `old_logprobs` the ratio is taken against the current weights detached: 1 in value, with
    the policy gradient as its gradient.
    """

    def __init__(
        self,
        clip_low: float = 0.2,
        clip_high: float = 0.2,
        kl_coef: float = 0.0,
        aggregation: Aggregation = "token",
        max_new_tokens: int = 1,
        temperature: float = 1.0,
    ):
        self.clip_low, self.clip_high, self.kl_coef = clip_low, clip_high, kl_coef
        # Completions were sampled from softmax(logits / T): the policy gradient and the ratios are
        # taken under that same distribution, or the update optimises a policy nobody sampled from.
        self.temperature = temperature
        self.aggregation, self.max_new_tokens = aggregation, max_new_tokens
        self._sums: dict[str, float] = {}

    def count(self, batch: dict) -> float:
        return normaliser(batch["labels"], self.aggregation, self.max_new_tokens)

    def loss_sum(self, logits: torch.Tensor, micro: dict) -> torch.Tensor:
        device = logits.device
        labels = micro["labels"].to(device)
        mask = labels[:, 1:] != -100
        logp = token_logprobs(logits / self.temperature if self.temperature != 1.0 else logits, labels)
        old = micro["old_logprobs"].to(device) if "old_logprobs" in micro else logp.detach()
        per_token, is_clipped = clipped_surrogate(
            logp, old, micro["advantages"].to(device), self.clip_low, self.clip_high
        )
        kl = None
        if "ref_logprobs" in micro:
            kl = k3_kl(logp, micro["ref_logprobs"].to(device))
            if self.kl_coef:
                per_token = per_token + self.kl_coef * kl
        self._accumulate(mask, is_clipped, kl, logp, old)
        return (per_token * aggregation_weights(mask, self.aggregation)).sum()

    @torch.no_grad()
    def _accumulate(self, mask, is_clipped, kl, logp, old) -> None:
        s = self._sums
        s["tokens"] = s.get("tokens", 0.0) + float(mask.sum())
        s["clipped"] = s.get("clipped", 0.0) + float((is_clipped & mask).sum())
        s["ratio"] = s.get("ratio", 0.0) + float((torch.exp(logp - old) * mask).sum())
        if kl is not None:
            s["kl"] = s.get("kl", 0.0) + float((kl * mask).sum())

    def pop_metrics(self) -> dict:
        """Per-token means over the step just taken: clip fraction, mean ratio, KL to the reference."""
        s, self._sums = self._sums, {}
        tokens = max(s.get("tokens", 0.0), 1.0)
        out = {
            "clip_frac": round(s.get("clipped", 0.0) / tokens, 6),
            "ratio": round(s.get("ratio", 0.0) / tokens, 6),
        }
        if "kl" in s:
            out["kl"] = round(s["kl"] / tokens, 6)
        return out


@torch.no_grad()
def sequence_logprobs(
    model, batch: dict, micro_batch_size: int, autocast=None, temperature: float = 1.0
) -> torch.Tensor:
    """Per-token log-probs of the batch's labels under `model` (no gradient), on the CPU.

    Used for the reference model's log-probs and for the rollout policy's when a rollout batch is
    reused for several optimizer steps; run under the trainer's autocast so they match its forward.
    """
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    parts = []
    try:
        for i in range(0, batch["input_ids"].size(0), micro_batch_size):
            ids = batch["input_ids"][i : i + micro_batch_size].to(device)
            pos = batch["position_ids"][i : i + micro_batch_size].to(device)
            with autocast if autocast is not None else contextlib.nullcontext():
                logits = model(input_ids=ids, position_ids=pos, use_cache=False).logits
            if temperature != 1.0:
                logits = logits / temperature
            parts.append(token_logprobs(logits, batch["labels"][i : i + micro_batch_size].to(device)).cpu())
    finally:
        model.train(was_training)
    return torch.cat(parts)
