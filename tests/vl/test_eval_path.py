"""VL tasks run through eval's one path: the runner, the VL backend, the same sample shape as text tasks."""

import json

import pytest

from infir.eval.backends import HFBackend, VLBackend, load_backend
from infir.eval.config import TaskSpec
from infir.eval.runner import evaluate_model
from infir.vl.stage import skill_table


def test_a_vl_task_runs_through_the_runner_and_its_samples_look_like_text_ones(tiny_vlm, tmp_path):
    model, processor = tiny_vlm
    model.save_pretrained(tmp_path / "m")
    processor.save_pretrained(tmp_path / "m")
    backend = load_backend("vl", tmp_path / "m", "cpu")
    assert isinstance(backend, VLBackend)
    spec = TaskSpec(name="vl_ocr", limit=3, max_new_tokens=4, options={"n": 3, "size": 32})
    results = evaluate_model(backend, [spec], chat=True, batch_size=2, samples_dir=tmp_path / "eval")
    assert results["vl_ocr"]["n"] == 3 and {"exact_match", "cer", "exact_match_shuffled", "stopped"} <= set(
        results["vl_ocr"]
    )
    rows = [
        json.loads(line) for line in (tmp_path / "eval" / "vl_ocr.samples.jsonl").read_text().splitlines()
    ]
    assert len(rows) == 3 and {"doc_index", "sample", "prompt", "output", "finish_reason", "correct"} <= set(
        rows[0]
    )
    assert "<image>" in rows[0]["prompt"]
    table = skill_table([{"stage": "s", "eval": results}])
    assert list(table[0]) == ["stage", "vl_ocr", "vl_ocr_shuffled", "vl_ocr_cer"]


def test_a_text_backend_refuses_a_task_that_shows_images(tmp_path):
    class TextOnly(HFBackend):
        def __init__(self):
            self.tokenizer = None

    with pytest.raises(ValueError, match="shows images"):
        evaluate_model(
            TextOnly(),
            [TaskSpec(name="vl_vqa", limit=1, options={"n": 1})],
            chat=True,
            batch_size=1,
            samples_dir=None,
        )
