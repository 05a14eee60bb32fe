import pytest
import torch
from PIL import Image

from infir.model.vision import VisionConfig, build_vision_tower, num_image_tokens
from infir.model.vlm import IMAGE_TOKEN, MODULE_PREFIXES, load_vlm, trainable_modules
from infir.train.config import OptimizerConfig
from infir.train.optim import freeze_by_lr
from infir.vl.batches import encode_vl
from infir.vl.data import VLConversation

from .conftest import TINY_VISION


def _image(color):
    return Image.new("RGB", (40, 30), color)


def test_saved_model_loads_with_transformers_llava_classes(tiny_vlm, tmp_path):
    from transformers import AutoModelForImageTextToText, AutoProcessor, LlavaForConditionalGeneration

    model, processor = tiny_vlm
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    auto = AutoModelForImageTextToText.from_pretrained(tmp_path)
    llava = LlavaForConditionalGeneration.from_pretrained(tmp_path)
    proc = AutoProcessor.from_pretrained(tmp_path)
    assert type(auto).__name__ == "LlavaForConditionalGeneration" and type(proc).__name__ == "LlavaProcessor"
    assert auto.config.vision_config.model_type == "siglip_vision_model"
    assert auto.config.vision_feature_select_strategy == "full"
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "image", "image": _image("red")},
                {"type": "text", "text": "What color is it?"},
            ],
        }
    ]
    inputs = proc.apply_chat_template(
        messages, tokenize=True, return_dict=True, return_tensors="pt", add_generation_prompt=True
    )
    assert int((inputs["input_ids"] == auto.config.image_token_id).sum()) == num_image_tokens(
        auto.config.vision_config
    )
    with torch.no_grad():
        ref = model.eval()(**inputs).logits
        assert torch.allclose(auto.eval()(**inputs).logits, ref)
        assert torch.allclose(llava.eval()(**inputs).logits, ref)
    loaded, _ = load_vlm(tmp_path)
    assert type(loaded).__name__ == "LlavaForConditionalGeneration"


def test_module_prefixes_cover_every_parameter_and_freeze_by_lr(tiny_vlm):
    model, _ = tiny_vlm
    names = [n for n, _ in model.named_parameters()]
    for part, prefixes in MODULE_PREFIXES.items():
        assert any(n.startswith(p + ".") for n in names for p in prefixes), part
    assert all(any(n.startswith(p + ".") for ps in MODULE_PREFIXES.values() for p in ps) for n in names)
    freeze_by_lr(model, OptimizerConfig(lr=1e-3, module_lr=trainable_modules(["projector"])))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("model.multi_modal_projector.") for n in trainable)


def test_our_encoding_equals_the_llava_processor(tiny_vlm):
    model, processor = tiny_vlm
    tok = processor.tokenizer
    images = [_image("red"), _image("blue")]
    conv = VLConversation(
        images,
        [
            {"role": "user", "content": f"{IMAGE_TOKEN}\nHow many shapes are there?"},
            {"role": "assistant", "content": "2"},
            {"role": "user", "content": f"And here? {IMAGE_TOKEN}"},
            {"role": "assistant", "content": "3"},
        ],
    )
    ours = encode_vl(tok, conv, model.config.image_token_id, model.config.image_seq_length)
    hf_messages = [
        {
            "role": "user",
            "content": [
                {"type": "image", "image": images[0]},
                {"type": "text", "text": "\nHow many shapes are there?"},
            ],
        },
        {"role": "assistant", "content": [{"type": "text", "text": "2"}]},
        {
            "role": "user",
            "content": [{"type": "text", "text": "And here? "}, {"type": "image", "image": images[1]}],
        },
        {"role": "assistant", "content": [{"type": "text", "text": "3"}]},
    ]
    theirs = processor.apply_chat_template(
        hf_messages, tokenize=True, return_dict=True, return_tensors="pt", return_assistant_tokens_mask=True
    )
    assert ours.input_ids == theirs["input_ids"][0].tolist()
    mask = theirs["assistant_masks"][0].tolist()
    assert [lab != -100 for lab in ours.labels] == [bool(m) for m in mask]
    assert (
        tok.decode([t for t, lab in zip(ours.input_ids, ours.labels) if lab != -100])
        == "2<|im_end|>3<|im_end|>"
    )


def test_image_count_mismatch_is_an_error(tiny_vlm):
    model, processor = tiny_vlm
    conv = VLConversation(
        [_image("red")],
        [{"role": "user", "content": "no marker"}, {"role": "assistant", "content": "x"}],
        "here.json[3]",
    )
    with pytest.raises(ValueError, match=r"here.json\[3\]"):
        encode_vl(processor.tokenizer, conv, model.config.image_token_id, model.config.image_seq_length)


def test_vision_tower_starts_from_a_siglip_dual_encoder(vl_tokenizer, tmp_path):
    from infir.model.vision import siglip_vision_config
    from infir.vl.config import DualEncoderConfig
    from infir.vl.filter import build_dual_encoder

    dual = build_dual_encoder(
        DualEncoderConfig(text_hidden_size=16, text_layers=1, text_heads=2),
        siglip_vision_config(TINY_VISION),
        vl_tokenizer,
    )
    dual.save_pretrained(tmp_path)
    tower = build_vision_tower(TINY_VISION, str(tmp_path))
    ours = tower.state_dict()
    theirs = {k.removeprefix("vision_model."): v for k, v in dual.vision_model.state_dict().items()}
    shared = [k for k in ours if k in theirs]
    assert len(shared) == len(ours) and all(torch.equal(ours[k], theirs[k]) for k in shared)
    assert not tower.config.vision_use_head


def test_vision_config_checks_its_shape():
    with pytest.raises(ValueError, match="smaller than patch_size"):
        VisionConfig(preset=None, hidden_size=32, num_layers=1, num_heads=2, image_size=8, patch_size=16)
    with pytest.raises(ValueError, match="not divisible by num_heads"):
        VisionConfig(preset=None, hidden_size=30, num_layers=1, num_heads=4, image_size=32, patch_size=16)
    so400m = VisionConfig(preset="so400m-patch14-384")
    from infir.model.vision import siglip_vision_config

    assert num_image_tokens(siglip_vision_config(so400m)) == 27 * 27  # SigLIP-so400m's 729 patches
