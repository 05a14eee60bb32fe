"""GRPO advantages and loss against values worked out by hand."""

import math

import pytest
import torch

from infir.rl.grpo import (
    GRPOObjective,
    aggregation_weights,
    clipped_surrogate,
    group_advantages,
    k3_kl,
    normaliser,
    token_logprobs,
)


def test_group_advantages_by_hand():
    # group 1: rewards 1, 0, 0, 1 -> mean 0.5, sample std sqrt(1/3); group 2: 0, 0, 0, 1 -> mean .25, std .5
    adv = group_advantages(torch.tensor([1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]), group_size=4, eps=0.0)
    s1 = math.sqrt(1 / 3)
    expected = [0.5 / s1, -0.5 / s1, -0.5 / s1, 0.5 / s1, -0.5, -0.5, -0.5, 1.5]
    assert adv.tolist() == pytest.approx(expected, rel=1e-6)


def test_dr_grpo_keeps_the_scale_and_equal_groups_carry_no_signal():
    rewards = torch.tensor([2.0, 0.0, 1.0, 1.0, 1.0, 1.0])
    assert group_advantages(rewards, 3, scale=False).tolist() == pytest.approx([1.0, -1.0, 0.0, 0, 0, 0])
    scaled = group_advantages(rewards, 3)
    assert scaled[3:].tolist() == [0.0, 0.0, 0.0]  # std 0: zero advantage, no NaN
    assert scaled[0].item() == pytest.approx(1.0 / (1.0 + 1e-4))  # sample std of (2, 0, 1) is 1
    with pytest.raises(ValueError, match="groups of 4"):
        group_advantages(rewards, 4)


def test_negative_weight_scales_only_below_average_completions():
    rewards = torch.tensor([1.0, 0.0, 0.0, 0.0])  # mean .25: advantages .75, -.25, -.25, -.25 (unscaled)
    half = group_advantages(rewards, 4, scale=False, negative_weight=0.5)
    assert half.tolist() == pytest.approx([0.75, -0.125, -0.125, -0.125])
    positive_only = group_advantages(rewards, 4, negative_weight=0.0)
    assert positive_only[0].item() == pytest.approx(group_advantages(rewards, 4)[0].item())
    assert positive_only[1:].tolist() == [0.0, 0.0, 0.0]


def test_token_logprobs_read_the_shifted_labels():
    logits = torch.zeros(1, 3, 4)
    logits[0, 0, 2] = math.log(3.0)  # p(2) = 3 / 6 at position 0
    labels = torch.tensor([[-100, 2, -100]])
    lp = token_logprobs(logits, labels)
    assert lp.shape == (1, 2)
    assert lp[0, 0].item() == pytest.approx(math.log(0.5))
    assert lp[0, 1].item() == 0.0  # ignored label


def test_clipped_surrogate_by_hand():
    old = torch.zeros(2, 3)
    # ratios: row 0 = (1.5, 0.5, 1.0) with A = +2; row 1 = (1.5, 0.5, 1.1) with A = -1
    ratios = torch.tensor([[1.5, 0.5, 1.0], [1.5, 0.5, 1.1]])
    logp = torch.log(ratios)
    loss, clipped = clipped_surrogate(logp, old, torch.tensor([2.0, -1.0]), 0.2, 0.3)
    # A > 0: -min(r A, clip(r) A): r=1.5 -> clip 1.3 -> -2.6; r=0.5 -> -1.0 (unclipped is smaller); r=1 -> -2
    # A < 0: r=1.5 -> -min(-1.5, -1.3) = 1.5; r=0.5 -> -min(-0.5, -0.8) = 0.8 (clipped); r=1.1 -> 1.1
    assert loss.flatten().tolist() == pytest.approx([-2.6, -1.0, -2.0, 1.5, 0.8, 1.1], rel=1e-6)
    assert clipped.tolist() == [[True, False, False], [False, True, False]]


def test_clipped_tokens_have_no_gradient():
    logp = torch.log(torch.tensor([[1.5, 1.1]])).requires_grad_(True)
    loss, _ = clipped_surrogate(logp, torch.zeros(1, 2), torch.tensor([1.0]), 0.2, 0.2)
    loss.sum().backward()
    assert logp.grad[0, 0].item() == 0.0  # past 1 + eps with a positive advantage
    assert logp.grad[0, 1].item() == pytest.approx(-1.1)  # d(-r A)/dlogp = -r A


def test_k3_kl_by_hand():
    logp = torch.tensor([math.log(0.5), math.log(0.2)])
    ref = torch.tensor([math.log(0.25), math.log(0.2)])
    # delta = log(0.25/0.5) = -log 2: exp(delta) - delta - 1 = 0.5 + log 2 - 1
    assert k3_kl(logp, ref).tolist() == pytest.approx([0.5 + math.log(2) - 1, 0.0], abs=1e-7)
    assert (k3_kl(torch.randn(100), torch.randn(100)) >= 0).all()


def test_aggregations():
    labels = torch.tensor([[-100, 5, 5, 5], [-100, -100, 5, -100]])  # 3 and 1 completion tokens
    mask = labels[:, 1:] != -100
    assert normaliser(labels, "token", 10) == 4.0
    assert normaliser(labels, "sequence", 10) == 2.0
    assert normaliser(labels, "constant", 10) == 20.0
    w = aggregation_weights(mask, "sequence")
    assert w[0].tolist() == pytest.approx([1 / 3] * 3) and w[1].tolist() == [0.0, 1.0, 0.0]


def _batch():
    labels = torch.tensor([[-100, 1, 2], [-100, 3, -100]])
    return {
        "input_ids": torch.tensor([[0, 1, 2], [0, 3, 0]]),
        "labels": labels,
        "advantages": torch.tensor([1.0, -0.5]),
    }


def test_objective_with_ratio_one_is_minus_the_mean_advantage_and_adds_the_kl():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 6, requires_grad=True)
    batch = _batch()
    obj = GRPOObjective(aggregation="token")
    # ratio 1 everywhere: loss per token = -A; tokens: 2 of row 0 (A=1), 1 of row 1 (A=-.5)
    assert obj.loss_sum(logits, batch).item() / obj.count(batch) == pytest.approx((-1 - 1 + 0.5) / 3)
    assert obj.pop_metrics() == {"clip_frac": 0.0, "ratio": 1.0}
    seq = GRPOObjective(aggregation="sequence")
    assert seq.loss_sum(logits, batch).item() / seq.count(batch) == pytest.approx((-1 + 0.5) / 2)
    lp = token_logprobs(logits, batch["labels"]).detach()
    ref = lp - 0.1 * (batch["labels"][:, 1:] != -100)  # reference a bit less likely on every target token
    kl_obj = GRPOObjective(kl_coef=0.5)
    value = kl_obj.loss_sum(logits, {**batch, "ref_logprobs": ref}).item() / 3
    k3 = math.exp(-0.1) + 0.1 - 1
    assert value == pytest.approx((-1 - 1 + 0.5) / 3 + 0.5 * k3, rel=1e-5)
    assert kl_obj.pop_metrics()["kl"] == pytest.approx(k3, abs=1e-6)


def test_objective_uses_old_logprobs_and_reports_clipping():
    torch.manual_seed(1)
    logits = torch.randn(2, 3, 6)
    batch = _batch()
    lp = token_logprobs(logits, batch["labels"])
    old = lp - torch.tensor([[0.5, 0.0], [0.0, 0.0]])  # first token: ratio e^0.5 > 1.2 with A = +1
    obj = GRPOObjective(clip_low=0.2, clip_high=0.2)
    total = obj.loss_sum(logits, {**batch, "old_logprobs": old}).item()
    assert total == pytest.approx(-1.2 - 1.0 + 0.5, rel=1e-5)
    metrics = obj.pop_metrics()
    assert metrics["clip_frac"] == pytest.approx(1 / 3, abs=1e-6)
    assert obj.pop_metrics()["clip_frac"] == 0.0  # popped: the next step starts from zero


def test_objective_takes_log_probs_at_the_sampling_temperature():
    torch.manual_seed(2)
    logits = torch.randn(2, 3, 6)
    batch = _batch()
    at_half = token_logprobs(logits / 0.5, batch["labels"])
    old = at_half - torch.tensor([[0.5, 0.0], [0.0, 0.0]])  # clips only if the ratio is taken at T = 0.5
    obj = GRPOObjective(clip_low=0.2, clip_high=0.2, temperature=0.5)
    assert obj.loss_sum(logits, {**batch, "old_logprobs": old}).item() == pytest.approx(
        -1.2 - 1.0 + 0.5, rel=1e-5
    )
    assert obj.pop_metrics()["clip_frac"] == pytest.approx(1 / 3, abs=1e-6)
