"""The synth section: validation messages, what the stage needs, defaults that run the tiny recipe."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from infir.synth.config import SynthConfig, TeacherConfig


def test_defaults_are_the_tiny_recipes():
    cfg = SynthConfig()
    assert cfg.teacher.type == "generated" and cfg.seeds[0].type == "generated"
    assert cfg.decontam.tasks == ["reasoning"] and cfg.stage_models() == () and cfg.input_files() == []


@pytest.mark.parametrize(
    "tree, message",
    [
        ({"teacher": {"type": "openai", "model": "m"}}, "needs `base_url` and `model`"),
        ({"teacher": {"type": "local"}}, "needs `model`"),
        (
            {
                "teacher": {
                    "type": "openai",
                    "base_url": "http://x/v1",
                    "model": "m",
                    "api_key_env": "sk-live-123",
                }
            },
            "looks like a secret, not an environment variable name",
        ),
        ({"seeds": [{"type": "jsonl"}]}, "needs `path`"),
        ({"seeds": [{"type": "task", "task": "no_such_task"}]}, "unknown task"),
        ({"seeds": []}, "at least one seed source"),
        ({"verify": {"poetry": {}}}, "unknown domain"),
        ({"verify": {"general": {"method": "scorer"}}}, "no `scorer` is configured"),
        ({"evolve": {"strategies": {"x": "no placeholder"}}}, "must contain {prompt}"),
        ({"difficulty": {"min": 0.8, "max": 0.2}}, "must not exceed"),
        ({"generation": {"n": 0}}, "greater than or equal to 1"),
        ({"teacher": {"concurency": 4}}, "Extra inputs are not permitted"),
    ],
)
def test_bad_configs_name_the_problem(tree, message):
    with pytest.raises(ValidationError, match=message):
        SynthConfig.model_validate(tree)


def test_stage_models_and_input_files():
    cfg = SynthConfig.model_validate(
        {
            "seeds": [
                {"type": "jsonl", "path": "data/a.jsonl"},
                {"type": "generated", "families": ["chain_sum"]},
            ],
            "teacher": {"type": "local", "model": "anneal"},
            "difficulty": {"reference": {"type": "local", "model": "pretrain"}},
            "quality": {"judge": {"type": "judge", "teacher": {"type": "local", "model": "anneal"}}},
        }
    )
    assert cfg.stage_models() == ("anneal", "pretrain")
    assert cfg.input_files() == ["data/a.jsonl"]


def test_verify_keeps_defaults_for_domains_not_given():
    cfg = SynthConfig.model_validate({"verify": {"math": {"min_votes": 3}}})
    assert set(cfg.verify) == {"math", "code", "general"} and cfg.verify["math"].min_votes == 3


def test_teacher_keeps_only_the_variable_name():
    t = TeacherConfig(
        type="openai", base_url="http://127.0.0.1:8000/v1", model="m", api_key_env="TEACHER_KEY"
    )
    assert t.model_dump()["api_key_env"] == "TEACHER_KEY"


def test_a_stage_checkpoint_is_named_by_the_stage_alone():
    with pytest.raises(ValidationError, match="stage name alone"):
        SynthConfig.model_validate({"teacher": {"type": "local", "model": "stage:anneal"}})
