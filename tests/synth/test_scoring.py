"""Difficulty (a reference model's pass rate), quality (a judge), domain labels, each through HTTP."""

from __future__ import annotations

import json
from collections import defaultdict

from infir.synth.loopback import LoopbackServer, ReferenceTeacher
from infir.synth.pipeline import synthesize

from .conftest import MATH_INSTRUCTION, http_config, word_problems


def rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_difficulty_is_one_minus_the_reference_models_pass_rate(tmp_path, seeds_file, server):
    weak = ReferenceTeacher.from_gsm8k(
        word_problems(40), wrong_fraction=0.6, seed=9, strip=(MATH_INSTRUCTION,)
    )
    with LoopbackServer(weak) as ref_server:
        ref = {"type": "openai", "base_url": ref_server.url, "model": "weak", "concurrency": 4}
        cfg = http_config(seeds_file, server.url, difficulty={"reference": ref, "samples": 4})
        summary = synthesize(cfg, tmp_path / "out", show_progress=False)
        row = next(r for r in summary["funnel"] if r["step"] == "rejection_sampling")
        assert ref_server.stats.answered == 4 * row["out"]  # 4 samples per kept prompt
    passes = defaultdict(list)
    for (question, _), correct in weak.by_request.items():
        passes[question].append(correct)
    prompts = {
        r["id"]: " ".join(r["prompt"].split()) for r in rows(tmp_path / "out" / "details" / "prompts.jsonl")
    }
    out = rows(tmp_path / "out" / "sft.jsonl")
    assert out and all(r["difficulty"] is not None for r in out)
    for r in out:
        outcomes = passes[prompts[r["seed_id"]]]
        assert r["difficulty"] == round(1 - sum(outcomes) / len(outcomes), 4)
    assert summary["difficulty"]["scored"] == len(out) and 0.3 < summary["difficulty"]["mean"] < 0.9


def test_difficulty_bounds_drop_easy_items(tmp_path, seeds_file, server):
    always_right = ReferenceTeacher.from_gsm8k(
        word_problems(20), wrong_fraction=0.0, strip=(MATH_INSTRUCTION,)
    )
    with LoopbackServer(always_right) as ref_server:  # knows half the problems; fails the rest
        ref = {"type": "openai", "base_url": ref_server.url, "model": "half", "concurrency": 4}
        cfg = http_config(seeds_file, server.url, difficulty={"reference": ref, "samples": 2, "min": 0.5})
        summary = synthesize(cfg, tmp_path / "out", show_progress=False)
    known = {" ".join(r["question"].split()) for r in word_problems(20)}
    kept_known = sum(
        1
        for r in rows(tmp_path / "out" / "details" / "prompts.jsonl")
        if r["verified_answers"] and " ".join(r["prompt"].split()) in known
    )
    row = next(r for r in summary["funnel"] if r["step"] == "difficulty")
    assert kept_known >= 15 and row["dropped"] == {"too_easy": kept_known}
    assert all(r["difficulty"] == 1.0 for r in rows(tmp_path / "out" / "sft.jsonl"))


def test_quality_judge_scores_and_filters(tmp_path, seeds_file, server):
    def judge(body):
        prompt = body["messages"][-1]["content"]
        return "Well reasoned.\nScore: 9" if "The answer is" in prompt.split("[Response]")[1] else "Score: 4"

    with LoopbackServer(judge) as judge_server:
        judge_cfg = {
            "type": "judge",
            "teacher": {"type": "openai", "base_url": judge_server.url, "model": "j"},
        }
        cfg = http_config(
            seeds_file, server.url, quality={"judge": judge_cfg, "min": 0.5}, output={"max_per_prompt": 4}
        )
        summary = synthesize(cfg, tmp_path / "out", show_progress=False)
        judged = judge_server.stats.answered
    row = next(r for r in summary["funnel"] if r["step"] == "quality")
    assert row["in"] == judged and row["dropped"]["low_quality"] > 0
    out = rows(tmp_path / "out" / "sft.jsonl")
    assert out and all(r["quality"] == 0.9 for r in out)
    assert all("The answer is" in r["messages"][-1]["content"] for r in out)


def test_labels_from_a_labeler(tmp_path, seeds_file, server):
    with LoopbackServer(lambda body: "Category: Word problem") as labeler:
        labeler_cfg = {"type": "openai", "base_url": labeler.url, "model": "l"}
        summary = synthesize(
            http_config(seeds_file, server.url, labels={"labeler": labeler_cfg}),
            tmp_path / "out",
            show_progress=False,
        )
    assert summary["labels"]["asked_labeler"] == summary["examples"]
    assert {r["label"] for r in rows(tmp_path / "out" / "sft.jsonl")} == {"word problem"}


def test_labels_from_the_seed_field(tmp_path, seeds_file, server):
    records = [{**r, "topic": "arithmetic" if i % 2 else "algebra"} for i, r in enumerate(word_problems(40))]
    (tmp_path / "labelled.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    cfg = http_config(tmp_path / "labelled.jsonl", server.url)
    cfg.seeds[0].label_field = "topic"
    summary = synthesize(cfg, tmp_path / "out", show_progress=False)
    assert set(summary["output"]["by_label"]) == {"arithmetic", "algebra"}
