"""The projector-norm penalty: what it adds to the loss, when it counts, and that training follows it."""

import math

import torch

from infir.train.objectives import TokenCrossEntropy, count_targets
from infir.vl.image_norm import ImageNormObjective

from .conftest import make_vlm
from .test_batches import _batches, _conversations


def _image_tokens(model, pixel_values) -> torch.Tensor:
    """The projected image tokens the LM receives, one row per token."""
    with torch.no_grad():
        tokens = model.model.get_image_features(pixel_values=pixel_values)
    tokens = tokens.pooler_output if hasattr(tokens, "pooler_output") else tokens
    tokens = torch.cat(list(tokens)) if isinstance(tokens, (list, tuple)) else tokens
    return tokens.reshape(-1, tokens.shape[-1])


def _batch(vl_tokenizer):
    model, processor = make_vlm(vl_tokenizer)
    _, data = _batches(model, processor, _conversations(8))
    batch = data.batch_at(0)
    return model, {k: v for k, v in batch.items() if k != "image_rows"}


def test_loss_adds_the_weighted_log_norm_penalty_per_target_token(vl_tokenizer):
    model, micro = _batch(vl_tokenizer)
    target, weight = 3.0, 0.5
    objective = ImageNormObjective(model.model.multi_modal_projector, target, weight)
    plain = TokenCrossEntropy()
    device = torch.device("cpu")
    got = objective.loss_sum(objective.forward(model, micro, device), micro).detach()
    expected_ce = plain.loss_sum(plain.forward(model, micro, device), micro).detach()
    norms = _image_tokens(model, micro["pixel_values"]).norm(dim=-1)
    assert norms.numel() == micro["pixel_values"].shape[0] * model.config.image_seq_length
    penalty = torch.log(norms / target).pow(2).mean()
    assert penalty > 0.01  # the fresh projector's tokens are far from the target: the term is not idle
    expected = expected_ce + weight * penalty * count_targets(micro["labels"])
    assert math.isclose(got.item(), expected.item(), rel_tol=1e-5)
    assert objective.pop_metrics() == {"image_token_norm": round(float(norms.mean()), 3)}
    assert objective.pop_metrics() == {}


def test_evaluation_forwards_and_a_removed_objective_add_nothing(vl_tokenizer):
    model, micro = _batch(vl_tokenizer)
    objective = ImageNormObjective(model.model.multi_modal_projector, 3.0, 1.0)
    plain = TokenCrossEntropy()
    device = torch.device("cpu")
    with torch.no_grad():  # what a phase's evaluation does: no image tokens kept, no penalty
        model(**{k: v for k, v in micro.items() if k != "labels"})
        assert objective.loss_sum(plain.forward(model, micro, device), micro) == plain.loss_sum(
            plain.forward(model, micro, device), micro
        )
    objective.remove()
    model(**{k: v for k, v in micro.items() if k != "labels"})
    assert objective._outputs == []


def test_training_with_the_penalty_pulls_image_token_norms_to_the_target(vl_tokenizer):
    def norms_after(objective_for, steps=60):
        model, micro = _batch(vl_tokenizer)
        objective = objective_for(model)
        opt = torch.optim.Adam(model.model.multi_modal_projector.parameters(), lr=3e-3)
        for _ in range(steps):
            opt.zero_grad()
            loss = objective.loss_sum(objective.forward(model, micro, torch.device("cpu")), micro)
            (loss / count_targets(micro["labels"])).backward()
            opt.step()
        return float(_image_tokens(model, micro["pixel_values"]).norm(dim=-1).mean())

    target = 20.0
    with_penalty = norms_after(lambda m: ImageNormObjective(m.model.multi_modal_projector, target, 1.0))
    without = norms_after(lambda m: TokenCrossEntropy())
    # From ~1.8 at initialisation: the penalised projector ends within 1.5x of the target, the plain one
    # wherever cross-entropy takes it (far off: 0.1 here).
    assert abs(math.log(with_penalty / target)) < math.log(1.5)
    assert abs(math.log(without / target)) > math.log(10)
