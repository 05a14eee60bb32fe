"""Fixtures for the export tests: small Llamas trained briefly on local text (no hub, no ../shared).

Three shapes, because each exercises a different part of the GGUF layout: tied embeddings (no
`output` tensor), untied embeddings, and grouped-query attention (K permuted with the KV head count).
The builder lives in `benchmarks/edge_model.py` so the benchmark measures the same kind of model.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from infir.export.edge_bench import AGREEMENT_PROMPTS

REPO = Path(__file__).resolve().parents[2]


def _edge_model_module():
    spec = importlib.util.spec_from_file_location("edge_model", REPO / "benchmarks" / "edge_model.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("edge_model", module)
    spec.loader.exec_module(module)
    return module


edge_model = _edge_model_module()
PROMPTS = AGREEMENT_PROMPTS  # the prompts the edge benchmark compares greedy continuations on

SHAPES = {
    "tied": {"tie": True, "kv_heads": 4},
    "untied": {"tie": False, "kv_heads": 4},
    "gqa": {"tie": True, "kv_heads": 2},
}


def _build(path: Path, shape: str) -> Path:
    return edge_model.build_edge_model(
        path,
        steps=300,
        hidden=64,
        layers=2,
        heads=4,
        intermediate=192,
        vocab_size=512,
        seq_len=64,
        batch=8,
        threads=1,
        log=lambda *_: None,
        **SHAPES[shape],
    )


@pytest.fixture(scope="session")
def model_factory(tmp_path_factory):
    built: dict[str, Path] = {}

    def get(shape: str = "tied") -> Path:
        if shape not in built:
            built[shape] = _build(tmp_path_factory.mktemp(f"edge-{shape}"), shape)
        return built[shape]

    return get


@pytest.fixture(scope="session")
def tied_model(model_factory) -> Path:
    return model_factory("tied")


@pytest.fixture(scope="session")
def gguf_factory(model_factory, tmp_path_factory):
    from infir.export.gguf_export import export_gguf

    made: dict[tuple[str, str], Path] = {}

    def get(shape: str, quant: str) -> Path:
        if (shape, quant) not in made:
            out = tmp_path_factory.mktemp(f"gguf-{shape}-{quant}") / f"model-{quant}.gguf"
            export_gguf(model_factory(shape), out, quant, log=lambda *_: None)
            made[shape, quant] = out
        return made[shape, quant]

    return get
