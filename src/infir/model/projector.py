"""The projector between the vision tower and the language model.

It is LLaVA's own two-layer MLP (`LlavaMultiModalProjector`: linear, activation, linear), so a
checkpoint loads in `LlavaForConditionalGeneration` without custom code; this module owns its
config and the LlavaConfig fields it maps to.
"""

from __future__ import annotations

from typing import Literal

from infir.config_base import Section


class ProjectorConfig(Section):
    hidden_act: Literal["gelu", "gelu_pytorch_tanh", "relu", "silu"] = "gelu"
    bias: bool = True


def llava_projector_fields(cfg: ProjectorConfig) -> dict:
    return {"projector_hidden_act": cfg.hidden_act, "multimodal_projector_bias": cfg.bias}


def projector_parameters(model) -> int:
    return sum(p.numel() for p in model.model.multi_modal_projector.parameters())
