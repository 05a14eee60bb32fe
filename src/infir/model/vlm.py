"""The vision-language model: transformers' LLaVA with a SigLIP tower, LLaVA's MLP projector and our LM.

    model = build_vlm(vision_tower, language_model, tokenizer, projector_cfg)
    processor = build_processor(tokenizer, model.config)
    model.save_pretrained(out); processor.save_pretrained(out)
    # anyone then loads it with AutoModelForImageTextToText / LlavaForConditionalGeneration + AutoProcessor

`LlavaForConditionalGeneration` *is* the model class (not a look-alike), so the checkpoint is
LLaVA-compatible by construction. Parameter names, used for per-module learning rates:
`model.vision_tower.*`, `model.multi_modal_projector.*`, `model.language_model.*`, `lm_head.*`
(tied to the input embeddings when the LM ties them).

Images become `<image>` tokens: the chat template writes one `<image>` per image item (or keeps the
`<image>` a string content already holds), and the processor expands each into one token per
vision patch (SigLIP has no CLS token, so LLaVA's "full" feature strategy keeps them all).
"""

from __future__ import annotations

from typing import Literal

from infir.model.projector import ProjectorConfig, llava_projector_fields
from infir.model.vision import num_image_tokens
from infir.tokenize.config import IM_END, IM_START

IMAGE_TOKEN = "<image>"

# Parameter-name prefixes of the three parts, for `optimizer.module_lr` (0 freezes a part).
MODULE_PREFIXES: dict[str, tuple[str, ...]] = {
    "vision": ("model.vision_tower",),
    "projector": ("model.multi_modal_projector",),
    "language": ("model.language_model", "lm_head"),
}

# ChatML with images. String contents pass through unchanged (LLaVA-style data writes "<image>\n..."
# inline); list contents (the transformers processor format) render `{"type": "image"}` as <image>.
VL_CHAT_TEMPLATE = (
    "{%- macro render(content) -%}"
    "{%- if content is string -%}{{- content -}}"
    "{%- else -%}{%- for item in content -%}"
    "{%- if item['type'] == 'image' -%}{{- '" + IMAGE_TOKEN + "' -}}"
    "{%- elif item['type'] == 'text' -%}{{- item['text'] -}}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{%- endmacro -%}"
    "{%- for message in messages %}"
    "{%- if message['role'] == 'assistant' %}"
    "{{- '" + IM_START + "assistant\\n' }}"
    "{% generation %}{{- render(message['content']) + '" + IM_END + "' }}{% endgeneration %}"
    "{{- '\\n' }}"
    "{%- else %}"
    "{{- '" + IM_START + "' + message['role'] + '\\n' + render(message['content']) + '" + IM_END + "\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '" + IM_START + "assistant\\n' }}{%- endif %}"
)


def add_image_token(tokenizer) -> int:
    """Give the tokenizer a special `<image>` token (and the VL chat template); returns its id."""
    from tokenizers import AddedToken

    if IMAGE_TOKEN not in tokenizer.get_vocab():
        tokenizer.add_tokens([AddedToken(IMAGE_TOKEN, special=True, normalized=False)], special_tokens=True)
    ids = tokenizer.encode(IMAGE_TOKEN, add_special_tokens=False)
    if len(ids) != 1:
        raise ValueError(f"{IMAGE_TOKEN} must encode to one token, got {ids}")
    tokenizer.chat_template = VL_CHAT_TEMPLATE
    return ids[0]


def build_vlm(
    vision_tower, language_model, tokenizer, projector: ProjectorConfig | None = None, feature_layer: int = -1
):
    """A LlavaForConditionalGeneration holding the given tower and LM weights and a fresh projector.

    The tokenizer gets `<image>` and the LM's embeddings grow to the tokenizer's size first.
    """
    from transformers import LlavaConfig, LlavaForConditionalGeneration

    image_token_id = add_image_token(tokenizer)
    if len(tokenizer) > language_model.get_input_embeddings().num_embeddings:
        language_model.resize_token_embeddings(len(tokenizer))
    text_config = language_model.config
    vision_config = vision_tower.config
    config = LlavaConfig(
        vision_config=vision_config.to_dict(),
        text_config=text_config.to_dict(),
        image_token_index=image_token_id,
        image_seq_length=num_image_tokens(vision_config),
        vision_feature_select_strategy="full",
        vision_feature_layer=feature_layer,
        tie_word_embeddings=bool(getattr(text_config, "tie_word_embeddings", False)),
        **llava_projector_fields(projector or ProjectorConfig()),
    )
    config.text_config._attn_implementation = getattr(text_config, "_attn_implementation", None) or "sdpa"
    model = LlavaForConditionalGeneration(config)
    model.model.vision_tower.load_state_dict(vision_tower.state_dict())
    model.model.language_model.load_state_dict(language_model.model.state_dict())
    if config.tie_word_embeddings:
        model.tie_weights()
    else:
        model.lm_head.load_state_dict(language_model.lm_head.state_dict())
    _init_projector(model.model.multi_modal_projector, text_config.initializer_range)
    model.generation_config = language_model.generation_config
    return model


def _init_projector(projector, std: float) -> None:
    import torch

    with torch.no_grad():
        for layer in (projector.linear_1, projector.linear_2):
            layer.weight.normal_(0.0, std)
            if layer.bias is not None:
                layer.bias.zero_()


def build_image_processor(image_size: int):
    """SigLIP preprocessing: resize to the tower's square size, scale to [0, 1], normalise to [-1, 1]."""
    from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

    return SiglipImageProcessorPil(size={"height": image_size, "width": image_size})


def build_processor(tokenizer, config):
    """A LlavaProcessor (SigLIP image processor + our tokenizer + the VL chat template)."""
    from transformers import LlavaProcessor

    add_image_token(tokenizer)
    vision = config.vision_config
    return LlavaProcessor(
        image_processor=build_image_processor(vision.image_size),
        tokenizer=tokenizer,
        patch_size=vision.patch_size,
        vision_feature_select_strategy="full",
        chat_template=VL_CHAT_TEMPLATE,
        image_token=IMAGE_TOKEN,
        num_additional_image_tokens=0,
    )


def load_vlm(path, device: str = "cpu", dtype=None):
    """Model and processor from a saved folder, through the Auto classes anyone else would use."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    model = AutoModelForImageTextToText.from_pretrained(str(path), dtype=dtype or torch.float32)
    processor = AutoProcessor.from_pretrained(str(path))
    return model.to(device), processor


def trainable_modules(trains: list[Literal["vision", "projector", "language"]]) -> dict[str, float]:
    """`module_lr` entries freezing every part not in `trains` (the curriculum's per-stage choice)."""
    return {
        prefix: 0.0 for part, prefixes in MODULE_PREFIXES.items() if part not in trains for prefix in prefixes
    }
