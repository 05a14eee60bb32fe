"""The local transformers teacher (through the eval generator) and `stage:<name>` checkpoints."""

from __future__ import annotations

import shutil

import pytest

from infir.synth.cache import ResponseCache
from infir.synth.config import SynthConfig, TeacherConfig
from infir.synth.pipeline import synthesize
from infir.synth.teachers import ChatRequest, LocalTeacher, build_teacher, resolve_model_path
from tests.eval.conftest import build_tiny_model


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("teacher"))


def requests(n=3, k=2, temperature=0.8):
    return [
        ChatRequest(
            [{"role": "user", "content": f"Calculate {i} + {i}."}],
            temperature,
            12,
            seed=s,
            hint={"question": f"Calculate {i} + {i}."},
        )
        for i in range(n)
        for s in range(k)
    ]


@pytest.mark.parametrize("prompt_format", ["chat", "base"])
def test_local_teacher_generates_and_caches(tmp_path, model_dir, prompt_format):
    cfg = TeacherConfig(
        type="local",
        model=str(model_dir),
        device="cpu",
        prompt_format=prompt_format,
        stop=["\n\n"],
        batch_size=4,
    )
    cache = ResponseCache(tmp_path / "c.sqlite")
    teacher = LocalTeacher(cfg, str(model_dir), cache, show_progress=False)
    first = teacher.complete(requests())
    assert len(first) == 6 and all(c.error is None and c.finish_reason in ("stop", "length") for c in first)
    body = teacher.body(requests()[0])
    assert body["prompt"].startswith("Question:" if prompt_format == "base" else "<s><|user|>")
    again = LocalTeacher(cfg, str(model_dir), cache, show_progress=False)
    second = again.complete(requests())
    assert [c.text for c in second] == [c.text for c in first] and all(c.cached for c in second)
    assert again.stats.sent == 0


def test_retrained_weights_are_another_cache_namespace(tmp_path, model_dir):
    copy = shutil.copytree(model_dir, tmp_path / "copy")
    cfg = TeacherConfig(type="local", model=str(copy), device="cpu")
    before = LocalTeacher(cfg, str(copy), None, show_progress=False).namespace
    weights = next(copy.glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes())  # a new checkpoint written in the same place
    assert LocalTeacher(cfg, str(copy), None, show_progress=False).namespace != before


def test_stage_checkpoints_resolve_in_the_run_dir(tmp_path, model_dir):
    shutil.copytree(model_dir, tmp_path / "anneal" / "final")
    assert resolve_model_path("anneal", tmp_path) == str(tmp_path / "anneal" / "final")
    with pytest.raises(FileNotFoundError, match="infir pretrain"):
        resolve_model_path("pretrain", tmp_path)
    teacher = build_teacher(
        TeacherConfig(type="local", model="anneal", device="cpu"), None, run_dir=tmp_path, show_progress=False
    )
    assert isinstance(teacher, LocalTeacher)


def test_difficulty_from_a_local_reference_model(tmp_path, model_dir):
    """An untrained model solves nothing: every kept problem gets difficulty 1."""
    shutil.copytree(model_dir, tmp_path / "anneal" / "final")
    cfg = SynthConfig.model_validate(
        {
            "seeds": [{"type": "generated", "families": ["basic_arithmetic"], "per_family": 6}],
            "evolve": {"enabled": False},
            "decontam": {"enabled": False},
            "difficulty": {
                "reference": {
                    "type": "local",
                    "model": "anneal",
                    "device": "cpu",
                    "prompt_format": "base",
                    "max_tokens": 16,
                    "stop": ["\n\n"],
                },
                "samples": 2,
            },
        }
    )
    summary = synthesize(cfg, tmp_path / "synth", run_dir=tmp_path, show_progress=False)
    assert summary["requests"]["reference"]["sent"] == 2 * summary["examples"]
    assert summary["difficulty"]["mean"] == 1.0
