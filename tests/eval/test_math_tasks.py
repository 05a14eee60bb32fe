"""GSM8K / MATH / MATH-500: loading, prompts, extraction, and reference answers scoring 100%."""

from __future__ import annotations

import json

import pytest

from infir.eval.answers import flexible_number, last_boxed, normalize_number, strict_number
from infir.eval.loading import DataError
from infir.eval.registry import get_task, task_names


def test_registry_lists_math_tasks_and_rejects_unknown():
    assert {"gsm8k", "math", "math500"} <= set(task_names())
    with pytest.raises(KeyError, match="unknown task 'gsm9k'"):
        get_task("gsm9k")
    with pytest.raises(ValueError, match="does not take option"):
        get_task("gsm8k", colour="red")


@pytest.mark.parametrize(
    "text,expected",
    [
        ("so 3 + 4 = 7\n#### 7", "7"),
        ("#### $1,234.50", "1234.5"),
        ("The answer is 18.", "18"),
        ("The answer is -3. Then The final answer is 12", "12"),
        ("no commitment 5", None),
    ],
)
def test_strict_extraction(text, expected):
    assert strict_number(text) == expected


def test_flexible_extraction_and_normalisation():
    assert flexible_number("she has 3 apples, then 12.00 pears.") == "12"
    assert flexible_number("nothing here") is None
    assert normalize_number("-0.0") == "0" and normalize_number("1e3") == "1000"
    assert last_boxed(r"a \boxed{\frac{1}{2}} then \boxed{x^{2}}") == "x^{2}"


def test_gsm8k_reference_answers_all_correct(shared):
    task = get_task("gsm8k", data_path=shared / "benchmarks" / "gsm8k")
    docs = task.docs()
    assert len(docs) == 1319
    verdicts = [task.evaluate(d, task.reference_output(d)) for d in docs]
    assert task.aggregate(verdicts) == {"strict_match": 1.0, "flexible_match": 1.0}
    wrong = task.evaluate(docs[0], "She makes 16 dollars.\n#### 16")
    assert not wrong["correct"] and wrong["extracted"] == "16"
    assert task.reward(docs[0], "9 * 2 = 18. The answer is 18.") == 1.0


def test_gsm8k_fewshot_prompt_comes_from_train_and_matches_lm_eval_layout(shared):
    task = get_task("gsm8k", data_path=shared / "benchmarks" / "gsm8k")
    doc = task.docs()[0]
    prompt = task.build_prompt(doc, num_fewshot=3)
    blocks = prompt.split("\n\nQuestion: ")
    assert len(blocks) == 4 and prompt.startswith("Question: ")
    assert prompt.endswith(f"Question: {doc['question']}\nAnswer:")
    assert all("####" in b for b in blocks[:3])
    test_questions = {d["question"] for d in task.docs()}
    shots = task.fewshot_examples(doc, 3)
    assert not any(s["question"] in test_questions for s in shots)


@pytest.mark.parametrize("name", ["math500", "math"])
def test_math_reference_answers_all_correct(shared, name):
    task = get_task(name, data_path=shared / "benchmarks" / name)
    docs = task.docs(limit=None if name == "math500" else 600)
    verdicts = [task.evaluate(d, task.reference_output(d)) for d in docs]
    assert task.aggregate(verdicts)["accuracy"] == 1.0


def test_math_equivalence_and_wrong_answers(shared):
    task = get_task("math500", data_path=shared / "benchmarks" / "math500")
    doc = task.docs()[0]  # (3, pi/2)
    assert task.evaluate(doc, r"so the point is $\boxed{(3, \pi/2)}$")["correct"]
    assert task.evaluate(doc, r"first \boxed{7}, finally \boxed{\left(3,\frac{\pi}{2}\right)}")["correct"]
    assert not task.evaluate(doc, r"$\boxed{(3, \pi)}$")["correct"]
    assert not task.evaluate(doc, "I do not know")["correct"]
    prompt = task.build_prompt(doc, num_fewshot=2)
    assert prompt.count("Problem:") == 3 and prompt.endswith("Solution:")


def test_decontamination_texts_cover_questions_and_solutions(shared):
    task = get_task("math500", data_path=shared / "benchmarks" / "math500")
    texts = list(task.decontamination_texts())
    assert len(texts) == 1000 and texts[0] == task.docs()[0]["problem"]
    assert texts[1] == task.docs()[0]["solution"]


def test_local_loading_errors_name_the_file_and_line(tmp_path):
    bad = tmp_path / "test.jsonl"
    bad.write_text('{"question": "q", "answer": "#### 1"}\n{oops\n')
    with pytest.raises(DataError, match=r"test\.jsonl:2"):
        get_task("gsm8k", data_path=tmp_path).docs()
    bad.write_text(json.dumps({"question": "q"}) + "\n")
    with pytest.raises(DataError, match=r"lacks field\(s\) \['answer'\]"):
        get_task("gsm8k", data_path=bad).docs()
    with pytest.raises(DataError, match="no file for split 'test'"):
        get_task("gsm8k", data_path=tmp_path / "..").docs()
    with pytest.raises(DataError, match="no such file or folder"):
        get_task("gsm8k", data_path="./missing/gsm8k").docs()


def test_single_file_serves_both_splits_and_fewshot_excludes_the_doc(tmp_path):
    path = tmp_path / "mine.jsonl"
    path.write_text(
        "".join(json.dumps({"question": f"q{i}", "answer": f"w\n#### {i}"}) + "\n" for i in range(4))
    )
    task = get_task("gsm8k", data_path=path)
    for doc in task.docs():
        shots = task.fewshot_examples(doc, 3)
        assert doc not in shots and len(shots) == 3


def test_loading_by_hub_name_asks_datasets_for_the_right_dataset(monkeypatch):
    import infir.eval.loading as loading

    calls = []

    def fake_load_hf(name, config, split):
        calls.append((name, config, split))
        return [{"question": "q", "answer": "w\n#### 4", "problem": "p", "solution": "\\boxed{1}"}]

    monkeypatch.setattr(loading, "load_hf", fake_load_hf)
    assert len(get_task("gsm8k").docs()) == 1 and calls[-1] == ("openai/gsm8k", "main", "test")
    get_task("gsm8k").fewshot_examples(None, 1)
    assert calls[-1] == ("openai/gsm8k", "main", "train")
    get_task("math500").docs()
    assert calls[-1] == ("HuggingFaceH4/MATH-500", None, "test")
    calls.clear()
    assert len(get_task("math").docs()) == 7  # one config per subject
    assert {c[1] for c in calls} == {
        "algebra",
        "counting_and_probability",
        "geometry",
        "intermediate_algebra",
        "number_theory",
        "prealgebra",
        "precalculus",
    }
    with pytest.raises(DataError, match="no such file or folder"):
        get_task("gsm8k", data_path="data/gsm8k/test.jsonl").docs()  # a path, not a hub name
