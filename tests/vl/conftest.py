"""Tiny tokenizer, models and processors for the VL tests (built once per session, in seconds)."""

from __future__ import annotations

import pytest
import torch

from infir.model.llm import ModelConfig, build_model
from infir.model.vision import VisionConfig, build_vision_tower
from infir.model.vlm import build_processor, build_vlm

TINY_VISION = VisionConfig(
    preset=None, hidden_size=32, intermediate_size=64, num_layers=1, num_heads=2, image_size=32, patch_size=16
)
TINY_LM = ModelConfig(
    preset=None, hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64, max_position_embeddings=512
)


@pytest.fixture(scope="session")
def vl_tokenizer_dir(tmp_path_factory):
    from infir.tokenize.config import TokenizerConfig
    from infir.tokenize.tokenizer import train_tokenizer
    from infir.data.images import generate

    texts = [
        qa.question + "\n" + qa.answer
        for name in ("shapes", "charts", "text", "gui", "math")
        for g in generate(name, 150, 0, draw=False)
        for qa in g.qas
    ]
    out = tmp_path_factory.mktemp("vl_tok")
    train_tokenizer(texts, TokenizerConfig(vocab_size=400), out, log=lambda *_: None)
    return out


@pytest.fixture
def vl_tokenizer(vl_tokenizer_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(vl_tokenizer_dir)


def make_vlm(tokenizer, seed: int = 0, init_std: float = 0.02):
    torch.manual_seed(seed)
    lm = build_model(TINY_LM.model_copy(update={"init_std": init_std}), tokenizer=tokenizer)
    tower = build_vision_tower(TINY_VISION)
    model = build_vlm(tower, lm, tokenizer)
    return model, build_processor(tokenizer, model.config)


@pytest.fixture
def tiny_vlm(vl_tokenizer):
    return make_vlm(vl_tokenizer)
