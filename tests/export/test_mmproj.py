"""The LLaVA export: text GGUF from a LLaVA checkpoint plus the vision `mmproj` file llama.cpp loads."""

from __future__ import annotations

import ctypes

import numpy as np
import pytest
import torch

from tests.export.conftest import edge_model

import gguf


@pytest.fixture(scope="module")
def llava(tmp_path_factory, tied_model):
    return edge_model.build_tiny_llava(tied_model, tmp_path_factory.mktemp("llava"))


@pytest.fixture(scope="module")
def llava_files(llava, tmp_path_factory):
    from infir.export.gguf_export import export_gguf
    from infir.export.mmproj import export_mmproj

    out = tmp_path_factory.mktemp("llava-gguf")
    export_gguf(llava, out / "text.gguf", "f16", log=lambda *_: None)
    export_mmproj(llava, out / "mmproj.gguf", log=lambda *_: None)
    return out / "text.gguf", out / "mmproj.gguf"


def test_mmproj_metadata_and_tensors(llava_files):
    reader = gguf.GGUFReader(str(llava_files[1]))
    meta = {k: f.contents() for k, f in reader.fields.items()}
    assert meta["general.architecture"] == "clip" and meta["clip.projector_type"] == "mlp"
    # vision_feature_layer -2 of 3 blocks: llama.cpp runs 2 blocks and reads their output.
    assert meta["clip.vision.block_count"] == 2 and meta["clip.vision.feature_layer"] == [2]
    assert meta["clip.use_gelu"] is False  # CLIP's quick_gelu
    names = {t.name for t in reader.tensors}
    assert {
        "v.patch_embd.weight",
        "v.class_embd",
        "v.position_embd.weight",
        "v.pre_ln.weight",
        "v.blk.1.ffn_up.weight",
        "mm.0.weight",
        "mm.2.bias",
    } <= names
    assert not any(n.startswith("v.blk.2.") or "post_ln" in n for n in names)


def test_text_gguf_of_llava_equals_the_language_model(llava_files, gguf_factory):
    plain = {t.name: np.asarray(t.data) for t in gguf.GGUFReader(str(gguf_factory("tied", "f16"))).tensors}
    from_llava = {t.name: np.asarray(t.data) for t in gguf.GGUFReader(str(llava_files[0])).tensors}
    assert plain.keys() == from_llava.keys()
    assert all(np.array_equal(plain[n], from_llava[n]) for n in plain)


def test_non_llava_model_is_refused(tied_model, tmp_path):
    from infir.export.gguf_export import ExportError
    from infir.export.mmproj import export_mmproj

    with pytest.raises(ExportError, match="model_type 'llama'"):
        export_mmproj(tied_model, tmp_path / "x.gguf")


def _llama_cpp_image_embeddings(text_gguf, mmproj, image: np.ndarray) -> np.ndarray:
    import llama_cpp
    from llama_cpp import mtmd_cpp as M

    llm = llama_cpp.Llama(str(text_gguf), n_ctx=256, n_threads=1, verbose=False)
    params = M.mtmd_context_params_default()
    params.use_gpu, params.n_threads, params.warmup, params.print_timings = False, 1, False, False
    ctx = M.mtmd_init_from_file(str(mmproj).encode(), llm.model, params)
    assert ctx, "llama.cpp could not load the mmproj file"
    try:
        bitmap = M.mtmd_bitmap_init(
            image.shape[1], image.shape[0], (ctypes.c_uint8 * image.size).from_buffer_copy(image.tobytes())
        )
        marker = M.mtmd_default_marker()
        text = M.mtmd_input_text()
        text.text, text.text_len, text.add_special, text.parse_special = marker, len(marker), False, True
        chunks = M.mtmd_input_chunks_init()
        assert M.mtmd_tokenize(ctx, chunks, ctypes.byref(text), (M.mtmd_bitmap_p_ctypes * 1)(bitmap), 1) == 0
        for i in range(M.mtmd_input_chunks_size(chunks)):
            chunk = M.mtmd_input_chunks_get(chunks, i)
            if M.mtmd_input_chunk_get_type(chunk) == M.MTMD_INPUT_CHUNK_TYPE_IMAGE:
                n = M.mtmd_input_chunk_get_n_tokens(chunk)
                assert M.mtmd_encode_chunk(ctx, chunk) == 0
                out = np.ctypeslib.as_array(M.mtmd_get_output_embd(ctx), shape=(n * llm.n_embd(),))
                return out.reshape(n, -1).copy()
        raise AssertionError("no image chunk")
    finally:
        M.mtmd_free(ctx)


def _reference_features(llava_dir, pixels: torch.Tensor, class_token_last: bool) -> np.ndarray:
    """LLaVA's image features computed from the checkpoint's modules; `class_token_last` orders the tokens
    as llama.cpp's llava graph does (patches, then the class token; rows 1.. kept)."""
    from transformers import LlavaForConditionalGeneration

    model = LlavaForConditionalGeneration.from_pretrained(str(llava_dir)).eval()
    tower = model.model.vision_tower
    with torch.inference_mode():
        patches = tower.embeddings.patch_embedding(pixels).flatten(2).transpose(1, 2)
        cls = tower.embeddings.class_embedding[None, None]
        x = torch.cat([patches, cls] if class_token_last else [cls, patches], 1)
        x = tower.pre_layrnorm(x + tower.embeddings.position_embedding.weight[None])
        for layer in tower.encoder.layers[:2]:  # vision_feature_layer -2 of 3
            out = layer(x, None)
            x = out[0] if isinstance(out, tuple) else out
        features = model.model.multi_modal_projector(x[0, 1:]).numpy()
        if not class_token_last:  # the same path transformers takes itself
            hf = model.model.get_image_features(pixel_values=pixels)
            hf = getattr(hf, "pooler_output", hf)
            hf = torch.cat(list(hf)) if isinstance(hf, (list, tuple)) else hf
            np.testing.assert_allclose(features, hf.reshape(features.shape).numpy(), atol=1e-5)
    return features


def test_llama_cpp_computes_image_features_from_mmproj(llava, llava_files):
    """llama.cpp's image embeddings from the mmproj file equal the checkpoint's projector output.

    An image of exactly `image_size` pixels needs no resizing, so both sides see the same pixels. llama.cpp
    0.3.x's llava graph appends the class token after the patches (transformers puts it first), so the
    reference is computed in whichever order llama.cpp uses; a wrong tensor layout matches neither.
    """
    from transformers.utils.constants import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

    image = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    pixels = (image.astype(np.float32) / 255 - np.float32(OPENAI_CLIP_MEAN)) / np.float32(OPENAI_CLIP_STD)
    pixels = torch.tensor(pixels).permute(2, 0, 1)[None]
    ours = _llama_cpp_image_embeddings(*llava_files, image)
    errors = {
        order: np.abs(ours - _reference_features(llava, pixels, order == "class-last")).max()
        for order in ("class-first", "class-last")
    }
    print(f"llama.cpp image features vs reference: max abs error {errors}")
    assert min(errors.values()) < 2e-3


def test_cli_and_stage_write_mmproj_for_llava(llava, tmp_path):
    import shutil
    import types

    from infir.config import RuntimeConfig
    from infir.export.cli import main
    from infir.export.config import ExportConfig
    from infir.export.stage import run
    from infir.run import MARKER, Stage, StageContext

    assert main(["--model", str(llava), "--format", "mmproj", "--out", str(tmp_path / "m.gguf")]) == 0
    shutil.copytree(llava, tmp_path / "run" / "sft" / "final")
    (tmp_path / "run" / "sft" / MARKER).write_text("x")
    recipe = types.SimpleNamespace(
        name="vl", export=ExportConfig(formats=["gguf"], quants=["q8_0"]), runtime=RuntimeConfig()
    )
    summary = run(StageContext(recipe, tmp_path / "run", Stage("export", ("export",), (), run)))
    assert summary["mmproj"]["path"] == "mmproj-f16.gguf"
    assert (tmp_path / "run" / "export" / "mmproj-f16.gguf").is_file()
    assert "skipped for LLaVA" in summary["edge"]["notes"][0]
