"""The vision half of a LLaVA model as a llama.cpp `mmproj` GGUF (CLIP or SigLIP tower + MLP projector).

llama.cpp runs a vision-language model as two files: the language model GGUF (`export_gguf` writes the
LLaVA checkpoint's text part) and this projector file, which `libmtmd` (llama-cpp-python's
`Llava15ChatHandler`, `llama-mtmd-cli --mmproj`) loads beside it. The layout is the LLaVA-1.5 one
llama.cpp calls projector type `mlp` (its `llava` graph), then Linear-GELU-Linear, for two towers:

  - a CLIP ViT (class token, pre-layernorm, quick-GELU or GELU MLPs) read at `vision_feature_layer`,
    the class token dropped (`vision_feature_select_strategy: default`);
  - a SigLIP ViT, InfiR-VL's tower (no class token, no pre-layernorm, a patch-embedding bias, tanh-GELU
    MLPs), every patch kept (`full`): the llava graph skips what a tower lacks, and reads the last
    block's output when `clip.vision.feature_layer` names it.

Facts of that layout the code relies on:
  - llama.cpp runs the vision blocks up to the feature layer and applies no post-layernorm (HF LLaVA
    reads `hidden_states[vision_feature_layer]`, before CLIP's post-layernorm), so the blocks past the
    feature layer and the post-layernorm are not written;
  - the projector's two linears are `mm.0` and `mm.2` (LLaVA's original nn.Sequential indices);
  - no rotary embedding, so no Q/K permutation (unlike the language model);
  - matrices and the patch convolution are F16, norms, biases and the class embedding F32.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from infir.export.gguf_export import ExportError, GGUFExport, _safetensors_files, require_config


def _feature_layer(config, n_layers: int) -> int:
    layer = getattr(config, "vision_feature_layer", -2)
    if isinstance(layer, (list, tuple)):
        raise ExportError(f"vision_feature_layer {layer}: several feature layers are not supported")
    return layer if layer >= 0 else n_layers + layer + 1  # index into hidden_states (0 = embeddings)


def check_llava(model_dir: Path):
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(str(model_dir))
    require_config(
        model_dir,
        config.model_type == "llava",
        f"model_type {config.model_type!r}; an mmproj file is written for LLaVA models (model_type 'llava')",
    )
    vision = config.vision_config
    require_config(
        model_dir,
        vision.model_type in TOWERS,
        f"vision tower {vision.model_type!r}; llama.cpp's `mlp` projector layout is written for CLIP and "
        "SigLIP vision towers",
    )
    tower = TOWERS[vision.model_type]
    strategy = getattr(config, "vision_feature_select_strategy", "default")
    require_config(
        model_dir,
        strategy == tower["strategy"],
        f"vision_feature_select_strategy {strategy!r}; llama.cpp's llava graph "
        + (
            "drops the class token ('default')"
            if tower["class_token"]
            else "keeps every SigLIP patch ('full')"
        ),
    )
    act = getattr(config, "projector_hidden_act", "gelu")
    require_config(
        model_dir,
        act in ("gelu", "gelu_pytorch_tanh"),
        f"projector_hidden_act {act!r}; llama.cpp's mlp projector uses gelu",
    )
    require_config(
        model_dir,
        vision.hidden_act in tower["acts"],
        f"vision hidden_act {vision.hidden_act!r} ({' or '.join(tower['acts'])})",
    )
    return config


# What each tower kind has, as the llava graph needs to know it.
TOWERS = {
    "clip_vision_model": {"class_token": True, "strategy": "default", "acts": ("quick_gelu", "gelu")},
    "clip": {"class_token": True, "strategy": "default", "acts": ("quick_gelu", "gelu")},
    "siglip_vision_model": {"class_token": False, "strategy": "full", "acts": ("gelu_pytorch_tanh",)},
}


def _vision_name(name: str, keep_layers: int) -> str | None:
    """llama.cpp name of an HF LLaVA vision/projector tensor; None for tensors llama.cpp does not use."""
    name = name.removeprefix("model.")
    if name.startswith("multi_modal_projector."):
        rest = name.removeprefix("multi_modal_projector.")
        index = {"linear_1": "0", "linear_2": "2"}.get(rest.split(".")[0])
        return None if index is None else f"mm.{index}.{rest.split('.', 1)[1]}"
    if not name.startswith("vision_tower."):
        return None
    # transformers 5 saves CLIPVisionModel's tensors without the `vision_model.` level; older saves keep it.
    rest = name.removeprefix("vision_tower.").removeprefix("vision_model.")
    fixed = {
        "embeddings.class_embedding": "v.class_embd",
        "embeddings.patch_embedding.weight": "v.patch_embd.weight",
        "embeddings.patch_embedding.bias": "v.patch_embd.bias",  # SigLIP's
        "embeddings.position_embedding.weight": "v.position_embd.weight",
        "pre_layrnorm.weight": "v.pre_ln.weight",  # sic: CLIP's spelling
        "pre_layrnorm.bias": "v.pre_ln.bias",
    }
    if rest in fixed:
        return fixed[rest]
    if not rest.startswith("encoder.layers."):
        return None  # post_layernorm (not applied to LLaVA's features), SigLIP's pooling head
    _, _, index, module = rest.split(".", 3)
    if int(index) >= keep_layers:
        return None
    parts = {
        "self_attn.q_proj": "attn_q",
        "self_attn.k_proj": "attn_k",
        "self_attn.v_proj": "attn_v",
        "self_attn.out_proj": "attn_out",
        "layer_norm1": "ln1",
        "layer_norm2": "ln2",
        "mlp.fc1": "ffn_up",
        "mlp.fc2": "ffn_down",
    }
    module_name, kind = module.rsplit(".", 1)
    if module_name not in parts:
        raise ExportError(f"unexpected vision tower tensor {name!r}")
    return f"v.blk.{index}.{parts[module_name]}.{kind}"


def export_mmproj(model_dir: str | Path, out_path: str | Path, *, log=print) -> GGUFExport:
    """Write the vision tower + projector of a LLaVA checkpoint as an mmproj GGUF (F16 matrices)."""
    import gguf
    from safetensors import safe_open

    model_dir, out_path = Path(model_dir), Path(out_path)
    t0 = time.perf_counter()
    config = check_llava(model_dir)
    vision = config.vision_config
    keep = _feature_layer(config, vision.num_hidden_layers)  # blocks that run before the features are read
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(f".{out_path.name}.tmp-{os.getpid()}")
    writer = gguf.GGUFWriter(str(tmp), "clip")
    writer.add_type(gguf.GGUFType.MMPROJ)
    writer.add_name(f"{model_dir.name}-mmproj")
    writer.add_file_type(int(gguf.LlamaFileType.MOSTLY_F16))
    writer.add_bool("clip.has_vision_encoder", True)
    writer.add_bool("clip.has_llava_projector", True)
    writer.add_string("clip.projector_type", "mlp")
    writer.add_uint32("clip.vision.image_size", vision.image_size)
    writer.add_uint32("clip.vision.patch_size", vision.patch_size)
    writer.add_uint32("clip.vision.embedding_length", vision.hidden_size)
    writer.add_uint32("clip.vision.feed_forward_length", vision.intermediate_size)
    writer.add_uint32("clip.vision.projection_dim", config.text_config.hidden_size)
    writer.add_uint32("clip.vision.attention.head_count", vision.num_attention_heads)
    writer.add_float32("clip.vision.attention.layer_norm_epsilon", vision.layer_norm_eps)
    writer.add_uint32("clip.vision.block_count", keep)
    writer.add_array("clip.vision.feature_layer", [keep])
    mean, std = _normalization(model_dir)
    writer.add_array("clip.vision.image_mean", mean)
    writer.add_array("clip.vision.image_std", std)
    # llama.cpp's gelu is the tanh approximation (SigLIP's own); without use_gelu it runs quick_gelu.
    writer.add_bool("clip.use_gelu", vision.hidden_act in ("gelu", "gelu_pytorch_tanh"))

    counts: dict[str, int] = {}
    for path in _safetensors_files(model_dir):
        with safe_open(str(path), framework="pt") as f:
            for name in f.keys():  # noqa: SIM118 (safe_open is not a dict)
                target = _vision_name(name, keep)
                if target is None:
                    continue
                array = f.get_tensor(name).float().numpy()
                qtype = gguf.GGMLQuantizationType.F16 if array.ndim >= 2 else gguf.GGMLQuantizationType.F32
                writer.add_tensor(
                    target, array.astype(np.float16 if array.ndim >= 2 else np.float32), raw_dtype=qtype
                )
                counts[qtype.name] = counts.get(qtype.name, 0) + 1
    # patch embedding, position embedding and CLIP's class token and pre_ln, or SigLIP's patch bias;
    # two projector linears; 16 tensors per block
    embeddings = 5 if TOWERS[vision.model_type]["class_token"] else 3
    expected = embeddings + 2 * 2 + 16 * keep
    if sum(counts.values()) != expected:
        raise ExportError(f"{model_dir}: wrote {sum(counts.values())} vision tensors, expected {expected}")
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    os.replace(tmp, out_path)
    result = GGUFExport(
        path=str(out_path),
        quant="f16",
        bytes=out_path.stat().st_size,
        seconds=round(time.perf_counter() - t0, 2),
        tensors=sum(counts.values()),
        tensor_types=counts,
    )
    log(
        f"wrote {out_path} (mmproj, {keep} of {vision.num_hidden_layers} {vision.model_type} blocks, "
        f"{result.bytes / 2**20:.1f} MiB) in {result.seconds:.1f}s"
    )
    return result


def _normalization(model_dir: Path) -> tuple[list[float], list[float]]:
    """Image mean/std of the checkpoint's image processor; CLIP's when it has none."""
    import json

    for name in ("preprocessor_config.json", "processor_config.json"):
        path = model_dir / name
        if path.is_file():
            data = json.loads(path.read_text())
            data = data.get("image_processor", data)
            if "image_mean" in data and "image_std" in data:
                return [float(x) for x in data["image_mean"]], [float(x) for x in data["image_std"]]
    from transformers.utils.constants import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

    return list(OPENAI_CLIP_MEAN), list(OPENAI_CLIP_STD)
