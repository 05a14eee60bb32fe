"""Next-token cross-entropy plus a pull of the projected image tokens' norms toward a target.

Nothing in the LLaVA layout bounds the projector's output: the LM's first RMSNorm hides its scale from
the first layer, so it drifts. In the tiny recipe it grew to ~250x the norm of a text embedding; an image
token's residual stream then barely moves through the LM's layers, and what they compute there (where a
token sits among the image tokens) never reaches the tokens that answer. The penalty is a training
term only: the saved checkpoint is a plain LLaVA model.
"""

from __future__ import annotations

import torch

from infir.train.objectives import TokenCrossEntropy, count_targets


class ImageNormObjective(TokenCrossEntropy):
    """Cross-entropy + `weight` x mean over image tokens of log(|token| / target)^2, per target token."""

    def __init__(self, projector: torch.nn.Module, target: float, weight: float):
        self.target, self.weight = float(target), float(weight)
        self._outputs: list[torch.Tensor] = []
        self._norms: list[float] = []
        self._hook = projector.register_forward_hook(self._keep)

    def remove(self) -> None:
        """Detach from the projector (the model outlives this phase's objective)."""
        self._hook.remove()

    def _keep(self, module, inputs, output) -> None:
        if torch.is_grad_enabled():  # training forwards only; evaluation runs under no_grad
            self._outputs.append(output)

    def forward(self, model, micro: dict, device: torch.device) -> torch.Tensor:
        self._outputs.clear()
        return super().forward(model, micro, device)

    def loss_sum(self, logits: torch.Tensor, micro: dict) -> torch.Tensor:
        loss = super().loss_sum(logits, micro)
        if not self._outputs:  # a micro-batch without images
            return loss
        tokens = torch.cat([t.reshape(-1, t.shape[-1]) for t in self._outputs]).float()
        self._outputs.clear()
        norms = tokens.norm(dim=-1)
        self._norms.append(float(norms.detach().mean()))
        penalty = torch.log(norms / self.target).pow(2).mean()
        # Summed like the cross-entropy (the trainer divides by the batch's target tokens), so `weight` is
        # the penalty's share per target token whatever the batch size.
        return loss + self.weight * penalty * count_targets(micro["labels"])

    def pop_metrics(self) -> dict:
        if not self._norms:
            return {}
        metrics = {"image_token_norm": round(sum(self._norms) / len(self._norms), 3)}
        self._norms.clear()
        return metrics
