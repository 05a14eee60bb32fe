from collections import Counter
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from infir.config import EMBEDDED_RECIPES, Recipe
from infir.vl.config import CurriculumPhase, VLConfig, VLSource


def _load(name: str) -> Recipe:
    return Recipe.model_validate(yaml.safe_load((EMBEDDED_RECIPES / f"{name}.yaml").read_text()))


@pytest.mark.parametrize("name", ["tiny-vl", "infir-vl-1.6b"])
def test_shipped_vl_recipes_validate(name):
    recipe = _load(name)
    assert "vl" in recipe.stages
    names = [s.name for s in recipe.vl.stages]
    assert names[-4:] == ["alignment", "perception", "instruction", "reasoning"]
    trains = {s.name: set(s.trains) for s in recipe.vl.stages}
    assert trains["alignment"] == {"projector"}
    assert trains["perception"] == {"vision", "projector"}
    assert trains["instruction"] == trains["reasoning"] == {"vision", "projector", "language"}
    assert any(src.filter for s in recipe.vl.stages for src in s.data)


def test_real_recipe_is_so400m_at_384_with_a_1b_language_model():
    vl = _load("infir-vl-1.6b").vl
    assert vl.vision.name_or_path == "google/siglip-so400m-patch14-384"
    assert vl.filter.model == "google/siglip-so400m-patch14-384" and vl.filter.threshold == 0.5
    assert vl.language_model


def test_trains_sets_module_lr_and_refuses_contradictions():
    stage = CurriculumPhase(
        name="alignment", trains=["projector"], data=[VLSource(type="generated", generator="shapes")]
    )
    lrs = stage.train_config().optimizer.module_lr
    assert lrs == {"model.vision_tower": 0.0, "model.language_model": 0.0, "lm_head": 0.0}
    stage = CurriculumPhase(
        name="s",
        trains=["vision", "projector", "language"],
        data=[VLSource(type="generated", generator="shapes")],
        train={"optimizer": {"lr": 1e-3, "module_lr": {"model.vision_tower": 1e-4}}},
    )
    assert stage.train_config().optimizer.module_lr == {"model.vision_tower": 1e-4}
    with pytest.raises(ValidationError, match="freezes it"):
        CurriculumPhase(
            name="s",
            trains=["projector"],
            data=[VLSource(type="generated", generator="shapes")],
            train={"optimizer": {"module_lr": {"model.vision_tower.encoder": 1e-4}}},
        )


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"type": "generated"}, "needs `generator`"),
        ({"type": "generated", "generator": "clouds"}, "unknown generator"),
        ({"type": "generated", "generator": "shapes", "kinds": ["ocr"]}, "writes no"),
        ({"type": "llava_json"}, "needs `path`"),
        ({"type": "llava_json", "path": "x.json", "corrupt_fraction": 0.1}, "generated sources only"),
        ({"type": "llava_json", "path": "x.json", "image_as_text": True}, "generated sources only"),
        (
            {"type": "generated", "generator": "shapes", "image_as_text": True, "filter": True},
            "no image-text",
        ),
        ({"type": "generated", "generator": "text", "options": {"vocabulary": 500}}, "vocabulary"),
        ({"type": "generated", "generator": "shapes", "options": {"vocabulary": 5}}, "takes no options"),
        ({"type": "llava_json", "path": "x.json", "options": {"vocabulary": 5}}, "generated sources only"),
    ],
)
def test_sources_are_checked(bad, match):
    with pytest.raises(ValidationError, match=match):
        VLSource(**bad)


def test_vl_config_cross_checks():
    with pytest.raises(ValidationError, match="distinct"):
        VLConfig(
            stages=[
                CurriculumPhase(
                    name="a", trains=["projector"], data=[VLSource(type="generated", generator="shapes")]
                )
            ]
            * 2
        )
    with pytest.raises(ValidationError, match="text task"):
        VLConfig(eval={"tasks": ["reasoning"]})
    with pytest.raises(ValidationError, match="filter"):
        VLConfig(filter={"enabled": False}, vision={"name_or_path": "filter"})
    with pytest.raises(ValidationError, match="folder"):
        CurriculumPhase(
            name="a/b", trains=["projector"], data=[VLSource(type="generated", generator="shapes")]
        )


def test_replay_names_an_earlier_stage_and_leaves_the_stage_its_own_data():
    src = [VLSource(type="generated", generator="shapes")]
    a = CurriculumPhase(name="a", trains=["projector"], data=src)
    b = CurriculumPhase(name="b", trains=["projector"], data=src, replay={"a": 0.3})
    assert VLConfig(stages=[a, b]).stages[1].replay == {"a": 0.3}
    with pytest.raises(ValidationError, match="not a stage before it"):
        VLConfig(stages=[b, a])
    with pytest.raises(ValidationError, match="not a stage before it"):
        VLConfig(stages=[a, CurriculumPhase(name="c", trains=["projector"], data=src, replay={"c": 0.2})])
    for bad in ({"a": 0.0}, {"a": 1.0}, {"a": 0.6, "z": 0.5}):
        with pytest.raises(ValidationError, match="replay shares"):
            CurriculumPhase(name="b", trains=["projector"], data=src, replay=bad)


def test_replay_draws_the_earlier_stages_own_conversations():
    from infir.vl.curriculum import ImagePool, replay_conversations, stage_conversations

    text = CurriculumPhase(
        name="perception",
        trains=["vision"],
        data=[VLSource(type="generated", generator="text", n=12, options={"vocabulary": 4, "max_words": 1})],
    )
    gui = CurriculumPhase(
        name="gui",
        trains=["vision"],
        data=[VLSource(type="generated", generator="gui", n=20, kinds=["click"])],
    )
    later = CurriculumPhase(
        name="reasoning",
        trains=["language"],
        replay={"perception": 0.2, "gui": 0.3},
        data=[VLSource(type="generated", generator="math", n=30)],
    )
    stages = [text, gui, later]
    pool = ImagePool(32, 0.2)
    quiet = {"log": lambda *_: None}
    own, _ = stage_conversations(later, 0, pool, "fail", **quiet)
    replayed, stats = replay_conversations(later, stages, len(own), 0, pool, "fail", **quiet)
    # shares of the whole mix: 30 own conversations are half of it, perception 0.2 of it, gui 0.3
    assert stats["perception"]["conversations"] == 12 and stats["gui"]["conversations"] == 18
    assert len(replayed) == 30
    originals = {c.source: c.messages for c in stage_conversations(text, 0, pool, "fail", **quiet)[0]}
    from_text = [c for c in replayed if c.meta["replay"] == "perception"]
    assert sorted(c.source for c in from_text) == sorted(originals)  # all 12, each once
    assert all(c.messages == originals[c.source] for c in from_text)  # the questions it was trained on
    assert {k for c in replayed if c.meta["replay"] == "gui" for k in c.meta["kinds"]} == {"click"}
    again, _ = replay_conversations(later, stages, len(own), 0, ImagePool(32, 0.2), "fail", **quiet)
    assert [(c.source, c.messages) for c in again] == [(c.source, c.messages) for c in replayed]
    # more than an earlier stage holds: every conversation once before any comes back
    big = later.model_copy(update={"replay": {"perception": 0.6}})
    many, stats = replay_conversations(big, stages, 30, 0, pool, "fail", **quiet)
    counts = Counter(c.source for c in many)
    assert len(many) == 45 and set(counts) == set(originals)
    assert max(counts.values()) - min(counts.values()) <= 1


def test_default_curriculum_is_the_papers_order():
    cfg = VLConfig()
    assert [s.name for s in cfg.stages] == ["alignment", "perception", "instruction", "reasoning"]
    assert Path(EMBEDDED_RECIPES / "tiny-vl.yaml").is_file()


def test_text_style_reaches_training_images_evaluation_and_the_dual_encoder():
    from infir.eval.registry import get_task
    from infir.vl.config import DualEncoderConfig
    from infir.vl.curriculum import ImagePool, generated_conversations

    style = {"vocabulary": 4, "max_words": 1, "renderings": 5}
    src = VLSource(type="generated", generator="text", n=8, options=style)
    pool = ImagePool(32, 0.2)
    convs = generated_conversations(src, 0, pool)
    answers = {c.messages[1]["content"] for c in convs}
    assert len(convs) == 8 and answers <= {"acid", "baby", "band", "bear"}  # OCR_WORDS[:4]
    # the same generator without options is another set of images, not the cached easy ones
    full = generated_conversations(VLSource(type="generated", generator="text", n=8), 0, pool)
    assert {c.meta["generator"] for c in full} == {"text"} and [c.images[0] for c in full] != [
        c.images[0] for c in convs
    ]
    task = get_task("vl_ocr", n=6, size=32, generator_options={"text": style})
    assert {d["answer"] for d in task.docs()} <= {"acid", "baby", "band", "bear"}
    with pytest.raises(ValueError, match="draws from"):
        get_task("vl_ocr", n=6, generator_options={"gui": {}})
    with pytest.raises(ValidationError, match="not among generators"):
        DualEncoderConfig(generators=["shapes"], generator_options={"text": style})
    with pytest.raises(ValidationError, match="max_words"):
        DualEncoderConfig(generator_options={"text": {"max_words": 9}})
