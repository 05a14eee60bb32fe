import json

import pytest
import torch

from infir.model.vision import siglip_vision_config
from infir.model.vlm import build_image_processor
from infir.train.callbacks import Callback
from infir.vl.config import DualEncoderConfig
from infir.vl.data import VLConversation
from infir.vl.filter import (
    SimilarityScorer,
    caption_pairs,
    drop_metrics,
    filter_pairs,
    measure,
    train_dual_encoder,
)

from .conftest import TINY_VISION


class FixedScores:
    """A scorer whose score is read off the caption, to check the filter's bookkeeping."""

    def scores(self, images, texts, batch_size=64):
        return [float(t.split("=")[1]) for t in texts]


def _conv(caption: str, corrupted: bool = False, image=True) -> VLConversation:
    return VLConversation(
        ["img"] if image else [],
        [{"role": "user", "content": "<image>\nDescribe."}, {"role": "assistant", "content": caption}],
        meta={"corrupted": corrupted},
    )


def test_filter_drops_pairs_under_the_threshold_and_scores_its_catch():
    convs = [
        _conv("s=0.9"),
        _conv("s=0.7"),
        _conv("s=0.2", corrupted=True),
        _conv("s=0.4", corrupted=True),
        _conv("s=0.3"),
        _conv("s=0.6", corrupted=True),
        _conv("s=0.0", image=False),
    ]
    kept, stats = filter_pairs(FixedScores(), convs, 0.5, 4)
    assert [c.messages[1]["content"] for c in kept] == ["s=0.9", "s=0.7", "s=0.6", "s=0.0"]
    assert stats == {
        "scored": 6,
        "dropped": 3,
        "kept": 4,
        "corrupted": 3,
        "corrupted_dropped": 2,
        "precision": pytest.approx(2 / 3, abs=1e-4),
        "recall": pytest.approx(2 / 3, abs=1e-4),
    }
    meta_caption = _conv("s=0.9")
    meta_caption.meta["caption"] = "s=0.1"  # the caption a source names wins over the first answer
    assert filter_pairs(FixedScores(), [meta_caption], 0.5, 4)[0] == []


def test_drop_metrics_on_hand_made_scores():
    m = drop_metrics(true_scores=[0.9, 0.8, 0.4, 0.7], false_scores=[0.1, 0.2, 0.6, 0.3], threshold=0.5)
    assert m["precision"] == pytest.approx(3 / 4) and m["recall"] == pytest.approx(3 / 4)
    assert m["true_pairs_kept"] == pytest.approx(3 / 4)


def test_a_tiny_dual_encoder_learns_to_drop_mismatched_pairs(vl_tokenizer, tmp_path):
    cfg = DualEncoderConfig(
        text_hidden_size=32,
        text_layers=1,
        text_heads=2,
        generators=["shapes", "text"],
        pairs_per_generator=200,
        steps=40,
        batch_size=32,
        lr=3e-3,
        warmup_steps=5,
    )
    processor = build_image_processor(32)
    scorer = train_dual_encoder(
        cfg,
        siglip_vision_config(TINY_VISION),
        vl_tokenizer,
        processor,
        0,
        32,
        tmp_path / "train",
        progress=False,
    )
    images, texts = caption_pairs(["shapes", "text"], 40, 0, "heldout", 32)
    stats = measure(scorer, images, texts, 0.5, 32, seed=0)
    # Against shuffled captions (mostly the other generator's): most are dropped, most true pairs kept.
    assert stats["recall"] >= 0.5 and stats["true_pairs_kept"] >= 0.6 and stats["precision"] >= 0.7, stats
    assert stats["mean_true_score"] > stats["mean_mismatched_score"] + 0.2
    assert [json.loads(line)["step"] for line in (tmp_path / "train" / "metrics.jsonl").open()][-1] == 40
    scorer.save(tmp_path / "model")
    loaded = SimilarityScorer.from_pretrained(str(tmp_path / "model"))
    assert loaded.kind == "sigmoid"
    assert loaded.scores(images[:4], texts[:4]) == pytest.approx(
        scorer.scores(images[:4], texts[:4]), abs=1e-5
    )


class StopAt(Callback):
    def __init__(self, step: int):
        self.step = step

    def on_step(self, trainer, loss: float) -> None:
        if trainer.step == self.step:
            raise KeyboardInterrupt


class StartStep(Callback):
    def on_fit_start(self, trainer) -> None:
        self.step = trainer.step


def test_a_killed_dual_encoder_resumes_to_the_same_scorer(vl_tokenizer, tmp_path):
    cfg = DualEncoderConfig(
        text_hidden_size=16,
        text_layers=1,
        text_heads=2,
        generators=["shapes"],
        pairs_per_generator=64,
        steps=12,
        batch_size=8,
        warmup_steps=2,
        save_every=4,
    )
    args = (cfg, siglip_vision_config(TINY_VISION), vl_tokenizer, build_image_processor(32), 0, 32)
    whole = train_dual_encoder(*args, tmp_path / "whole", progress=False)
    with pytest.raises(KeyboardInterrupt):
        train_dual_encoder(*args, tmp_path / "killed", progress=False, callbacks=[StopAt(10)])
    start = StartStep()
    resumed = train_dual_encoder(*args, tmp_path / "killed", progress=False, callbacks=[start])
    assert start.step == 8  # the last checkpoint before the kill, not a fresh start
    a, b = whole.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)  # the calibrated head (t, b) included
