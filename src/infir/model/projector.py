"""The projector between the vision tower and the language model.

It is LLaVA's own two-layer MLP (`LlavaMultiModalProjector`: linear, activation, linear), so a
checkpoint loads in `LlavaForConditionalGeneration` without custom code; this module owns its
config and the LlavaConfig fields it maps to.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from infir.config_base import Section


class ProjectorConfig(Section):
    hidden_act: Literal["gelu", "gelu_pytorch_tanh", "relu", "silu"] = "gelu"
    bias: bool = True
    # Training only: while the projector trains, the loss adds `output_norm_weight` x the mean squared log
    # ratio of each image token's norm to `output_norm` (None: off). Unchecked, the tiny recipe's image
    # tokens grew to ~250x the norm of text embeddings, so the LM's layers could not write into them and
    # the position of a token never reached the answer (README, "The tiny VL curriculum").
    output_norm: float | None = Field(None, gt=0)
    output_norm_weight: float = Field(1.0, ge=0)


def llava_projector_fields(cfg: ProjectorConfig) -> dict:
    return {"projector_hidden_act": cfg.hidden_act, "multimodal_projector_bias": cfg.bias}


def projector_parameters(model) -> int:
    return sum(p.numel() for p in model.model.multi_modal_projector.parameters())
