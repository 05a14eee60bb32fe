"""The vision encoder: transformers' SigLIP vision tower, built from a shape or loaded by name/path.

Real runs load `google/siglip-so400m-patch14-384` (the encoder InfiR-VL uses); tests and the tiny
recipe build a few-layer tower from a preset. Either way the result is a `SiglipVisionModel`, the
class LLaVA instantiates from `LlavaConfig.vision_config`, so checkpoints stay LLaVA-compatible.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from infir.config_base import Section

# Shapes we name in recipes. `so400m-patch14-384` is google/siglip-so400m-patch14-384's vision tower.
PRESETS: dict[str, dict] = {
    # 96 px in 3 x 3 patches of 32 px: 9 image tokens, each one cell of the generated scenes and screens.
    "tiny": dict(
        hidden_size=128, intermediate_size=512, num_layers=3, num_heads=4, image_size=96, patch_size=32
    ),
    "so400m-patch14-384": dict(
        hidden_size=1152, intermediate_size=4304, num_layers=27, num_heads=16, image_size=384, patch_size=14
    ),
}
SO400M = "google/siglip-so400m-patch14-384"


class VisionConfig(Section):
    """A SigLIP vision tower: `name_or_path` (a SigLIP or SigLIP-vision checkpoint), or a shape.

    `name_or_path: filter` starts from the dual encoder the image-text filter step trained or loaded
    (in the tiny recipe that is the tower's contrastive pretraining; at real scale both are so400m).
    """

    name_or_path: str | None = None
    preset: Literal["tiny", "so400m-patch14-384"] | None = "tiny"
    hidden_size: int | None = Field(None, ge=8)
    intermediate_size: int | None = Field(None, ge=8)
    num_layers: int | None = Field(None, ge=1)
    num_heads: int | None = Field(None, ge=1)
    image_size: int | None = Field(None, ge=8)
    patch_size: int | None = Field(None, ge=1)
    # Which hidden state feeds the projector: -1 the last layer (SigLIP has no CLS token to drop,
    # so every patch is kept: LLaVA's "full" strategy), -2 the penultimate one (LLaVA-1.5's choice).
    feature_layer: int = -1

    @model_validator(mode="after")
    def _check(self) -> VisionConfig:
        if self.name_or_path is None:
            s = self.shape()
            if s["hidden_size"] % s["num_heads"]:
                raise ValueError(
                    f"vision: hidden_size {s['hidden_size']} is not divisible by num_heads {s['num_heads']}"
                )
            if s["image_size"] < s["patch_size"]:  # so400m: 384 px / 14 px patches -> 27 x 27, edge dropped
                raise ValueError(
                    f"vision: image_size {s['image_size']} is smaller than patch_size {s['patch_size']}"
                )
        if self.feature_layer == 0:
            raise ValueError("vision.feature_layer 0 is the patch embedding, not a layer; use -1 or -2")
        return self

    def shape(self) -> dict:
        base = dict(PRESETS[self.preset]) if self.preset else {}
        for key in (
            "hidden_size",
            "intermediate_size",
            "num_layers",
            "num_heads",
            "image_size",
            "patch_size",
        ):
            if getattr(self, key) is not None:
                base[key] = getattr(self, key)
        missing = {"hidden_size", "num_layers", "num_heads", "image_size", "patch_size"} - base.keys()
        if missing:
            raise ValueError(f"vision: missing {sorted(missing)} (give a preset or explicit sizes)")
        base.setdefault("intermediate_size", 4 * base["hidden_size"])
        return base


def siglip_vision_config(cfg: VisionConfig):
    from transformers import SiglipVisionConfig

    s = cfg.shape()
    # The attention-pooling head only serves contrastive training; LLaVA reads patch states.
    return SiglipVisionConfig(
        hidden_size=s["hidden_size"],
        intermediate_size=s["intermediate_size"],
        num_hidden_layers=s["num_layers"],
        num_attention_heads=s["num_heads"],
        image_size=s["image_size"],
        patch_size=s["patch_size"],
        vision_use_head=False,
    )


def build_vision_tower(cfg: VisionConfig, name_or_path: str | None = None):
    """A `SiglipVisionModel`: random from the shape, or the vision half of a SigLIP checkpoint."""
    import torch
    from transformers import SiglipVisionModel

    source = name_or_path or cfg.name_or_path
    if source is None:
        return SiglipVisionModel(siglip_vision_config(cfg))
    # Works for both full SigLIP checkpoints (text + vision) and vision-only ones.
    return SiglipVisionModel.from_pretrained(source, dtype=torch.float32, vision_use_head=False)


def num_image_tokens(vision_config) -> int:
    """Patches per image; with the "full" strategy every patch becomes one image token."""
    return (vision_config.image_size // vision_config.patch_size) ** 2
