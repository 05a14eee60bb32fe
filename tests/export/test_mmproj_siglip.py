"""InfiR-VL's own layout (SigLIP tower + LLaVA MLP projector + our LM) as text GGUF + mmproj, run in llama.cpp."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.export.test_mmproj import _llama_cpp_image_embeddings

import gguf


@pytest.fixture(scope="module")
def siglip_llava(tied_model, tmp_path_factory):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from infir.model.vision import VisionConfig, build_vision_tower
    from infir.model.vlm import build_processor, build_vlm

    torch.manual_seed(0)
    tower = build_vision_tower(
        VisionConfig(preset="tiny", hidden_size=64, intermediate_size=128, num_layers=2, num_heads=4)
    )
    lm = AutoModelForCausalLM.from_pretrained(str(tied_model))
    tokenizer = AutoTokenizer.from_pretrained(str(tied_model))
    model = build_vlm(tower, lm, tokenizer).eval()
    out = tmp_path_factory.mktemp("siglip-llava")
    model.save_pretrained(out)
    build_processor(tokenizer, model.config).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def siglip_files(siglip_llava, tmp_path_factory):
    from infir.export.gguf_export import export_gguf
    from infir.export.mmproj import export_mmproj

    out = tmp_path_factory.mktemp("siglip-gguf")
    export_gguf(siglip_llava, out / "text.gguf", "f16", log=lambda *_: None)
    export_mmproj(siglip_llava, out / "mmproj.gguf", log=lambda *_: None)
    return out / "text.gguf", out / "mmproj.gguf"


def test_siglip_mmproj_has_the_llava_graphs_tensors_and_every_block(siglip_files):
    reader = gguf.GGUFReader(str(siglip_files[1]))
    meta = {k: f.contents() for k, f in reader.fields.items()}
    assert meta["clip.projector_type"] == "mlp" and meta["clip.use_gelu"] is True
    assert meta["clip.vision.block_count"] == 2 and meta["clip.vision.feature_layer"] == [2]  # the last block
    assert meta["clip.vision.image_mean"] == pytest.approx([0.5, 0.5, 0.5])
    names = {t.name for t in reader.tensors}
    assert {
        "v.patch_embd.weight",
        "v.patch_embd.bias",
        "v.position_embd.weight",
        "v.blk.1.ffn_down.weight",
        "mm.0.weight",
        "mm.2.bias",
    } <= names
    assert not any(n in names for n in ("v.class_embd", "v.pre_ln.weight", "v.post_ln.weight"))


def test_llama_cpp_computes_the_siglip_llava_image_features(siglip_llava, siglip_files):
    """Same pixels on both sides (an image of exactly the tower's size needs no resizing): llama.cpp's image
    embeddings equal transformers' `get_image_features` up to f16 weights and its tanh-GELU projector."""
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    image = np.random.default_rng(1).integers(0, 256, (96, 96, 3), dtype=np.uint8)
    processor = AutoProcessor.from_pretrained(str(siglip_llava))
    pixels = processor.image_processor(images=[image], return_tensors="pt")["pixel_values"]
    model = LlavaForConditionalGeneration.from_pretrained(str(siglip_llava)).eval()
    with torch.inference_mode():
        hf = model.model.get_image_features(pixel_values=pixels)
    hf = getattr(hf, "pooler_output", hf)
    hf = (torch.cat(list(hf)) if isinstance(hf, (list, tuple)) else hf).reshape(9, -1).numpy()
    ours = _llama_cpp_image_embeddings(*siglip_files, image)
    assert ours.shape == hf.shape
    error = np.abs(ours - hf).max() / np.abs(hf).max()
    print(
        f"llama.cpp SigLIP-LLaVA image features vs transformers: max error {error:.2e} of the largest value"
    )
    assert error < 5e-3


def test_export_stage_picks_the_vl_model(siglip_llava, tmp_path):
    import os
    import types

    from infir.config import RuntimeConfig
    from infir.export.config import ExportConfig
    from infir.export.stage import run
    from infir.run import MARKER, Stage, StageContext

    vl = tmp_path / "run" / "vl"
    (vl / "2-reasoning").mkdir(parents=True)
    os.symlink(siglip_llava, vl / "2-reasoning" / "final")
    os.symlink("2-reasoning/final", vl / "final")
    (vl / MARKER).write_text("x")
    recipe = types.SimpleNamespace(
        name="vl", export=ExportConfig(formats=["gguf"], quants=["f16"]), runtime=RuntimeConfig()
    )
    summary = run(StageContext(recipe, tmp_path / "run", Stage("export", ("export",), (), run)))
    assert summary["source"] == "vl" and summary["mmproj"]["path"] == "mmproj-f16.gguf"


def test_llama_cpp_answers_like_transformers_on_images(siglip_llava, siglip_files):
    """Greedy answers of the f16 text GGUF + mmproj in llama.cpp's multimodal runtime equal transformers'
    on the same checkpoint, token for token, for held-out generated images."""
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    from infir.export.llamacpp_vl import LlamaCppVLM
    from infir.data.images import generate

    processor = AutoProcessor.from_pretrained(str(siglip_llava))
    model = LlavaForConditionalGeneration.from_pretrained(str(siglip_llava)).eval()
    vlm = LlamaCppVLM(*siglip_files, n_ctx=512, threads=1)
    images = [
        np.asarray(g.image.convert("RGB"))
        for name in ("shapes", "charts", "text", "gui")
        for g in generate(name, 2, seed=11, split="heldout", size=96)
    ]
    images.append(np.random.default_rng(2).integers(0, 256, (96, 96, 3), dtype=np.uint8))
    answers = set()
    for image in images:
        prompt = "<image>\nQuestion: what is in the picture?\nAnswer:"
        inputs = processor(text=prompt, images=[image], return_tensors="pt")
        with torch.inference_mode():
            generated = model.generate(**inputs, max_new_tokens=16, do_sample=False)
        expected = generated[0, inputs["input_ids"].shape[1] :].tolist()
        got = vlm.greedy(prompt, image, 16).token_ids
        assert got == expected, (processor.tokenizer.decode(expected), processor.tokenizer.decode(got))
        answers.add(tuple(expected))
    assert len(answers) > 1  # the answers depend on the image: the image path is exercised, not bypassed
