"""MMLU / MMLU-STEM: lm-eval's prompt layout, subject filtering, and log-likelihood choice."""

from __future__ import annotations

import json

from infir.eval.registry import get_task

ROWS = [
    {
        "question": "What is 2 + 2?",
        "subject": "elementary_mathematics",
        "choices": ["3", "4", "5", "6"],
        "answer": 1,
    },
    {
        "question": "Who wrote Hamlet?",
        "subject": "high_school_european_history",
        "choices": ["Shakespeare", "Marlowe", "Jonson", "Kyd"],
        "answer": 0,
    },
]


def test_prompt_layout_matches_lm_eval(tmp_path):
    (tmp_path / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    task = get_task("mmlu", data_path=tmp_path)
    doc = task.docs()[0]
    assert task.build_prompt(doc) == (
        "The following are multiple choice questions (with answers) about elementary mathematics.\n\n"
        "What is 2 + 2?\nA. 3\nB. 4\nC. 5\nD. 6\nAnswer:"
    )
    assert task.continuations(doc) == [" A", " B", " C", " D"]
    verdict = task.evaluate_loglikelihoods(doc, [-3.0, -1.0, -2.0, -5.0])
    assert verdict["correct"] and verdict["extracted"] == "B" and verdict["choice"] == 1
    assert task.evaluate(doc, "The answer is B.")["correct"] and not task.evaluate(doc, "A")["correct"]
    assert task.evaluate(doc, task.reference_output(doc))["correct"]


def test_stem_subset_keeps_stem_subjects(tmp_path):
    (tmp_path / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    assert len(get_task("mmlu", data_path=tmp_path).docs()) == 2
    assert [d["question"] for d in get_task("mmlu_stem", data_path=tmp_path).docs()] == ["What is 2 + 2?"]


def test_shared_mmlu_stem_loads_all_questions(shared):
    task = get_task("mmlu_stem", data_path=shared / "benchmarks" / "mmlu_stem")
    docs = task.docs()
    assert len(docs) == 3018
    verdicts = [task.evaluate(d, task.reference_output(d)) for d in docs]
    assert task.aggregate(verdicts)["accuracy"] == 1.0


def test_fewshot_comes_from_dev_questions_of_the_same_subject(tmp_path):
    (tmp_path / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    dev = [dict(ROWS[0], question=f"dev math {i}") for i in range(3)] + [
        dict(ROWS[1], question="dev history")
    ]
    (tmp_path / "dev.jsonl").write_text("".join(json.dumps(r) + "\n" for r in dev))
    task = get_task("mmlu", data_path=tmp_path)
    prompt = task.build_prompt(task.docs()[0], num_fewshot=2)
    assert "dev math 0" in prompt and "dev math 1" in prompt and "dev history" not in prompt
    assert prompt.count("Answer:") == 3 and "\nAnswer: B\n\n" in prompt
