"""HumanEval and MBPP: canonical solutions pass, wrong ones fail, pass@k, and `infir eval score`."""

from __future__ import annotations

import json
import time

import pytest

from infir.eval.cli import main as eval_main
from infir.eval.registry import get_task
from infir.eval.tasks.code import code_from_chat, pass_at_k

MBPP_ROWS = [
    {
        "task_id": 11,
        "text": "Write a python function to remove first and last occurrence of a given character "
        "from the string.",
        "code": "def remove_Occ(s, ch):\n    i = s.find(ch)\n    if i >= 0:\n        s = s[:i] + "
        "s[i + 1:]\n    j = s.rfind(ch)\n    if j >= 0:\n        s = s[:j] + s[j + 1:]\n    return s",
        "test_list": [
            'assert remove_Occ("hello","l") == "heo"',
            'assert remove_Occ("abcda","a") == "bcd"',
            'assert remove_Occ("PHP","P") == "H"',
        ],
        "test_setup_code": "",
        "challenge_test_list": [],
    },
    {
        "task_id": 12,
        "text": "Write a function to square a number.",
        "code": "def square(x):\n    return x * x",
        "test_list": ["assert square(3) == 9", "assert square(-2) == 4", "assert square(0) == 0"],
        "test_setup_code": "",
        "challenge_test_list": [],
    },
]


def test_pass_at_k_estimator():
    assert pass_at_k(10, 0, 1) == 0.0 and pass_at_k(10, 10, 1) == 1.0
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)
    assert pass_at_k(5, 2, 2) == pytest.approx(1 - (3 * 2) / (5 * 4))  # 1 - C(3,2)/C(5,2)
    assert pass_at_k(4, 1, 4) == 1.0


def test_code_extraction_from_chat_answers():
    assert code_from_chat("Here:\n```python\ndef f():\n    return 1\n```\nDone") == "def f():\n    return 1\n"
    assert code_from_chat("```\nx = 1\n```") == "x = 1\n"
    assert code_from_chat("def g(): pass") == "def g(): pass"


def test_humaneval_canonical_solutions_all_pass_quickly():
    task = get_task("humaneval")
    docs = task.docs()
    assert len(docs) == 164
    t0 = time.perf_counter()
    verdicts = task.evaluate_many(docs, [task.reference_output(d) for d in docs], workers=2)
    seconds = time.perf_counter() - t0
    for doc, verdict in zip(docs, verdicts):
        verdict["doc_id"] = doc["task_id"]
    failures = [(d["task_id"], v["result"]) for d, v in zip(docs, verdicts) if not v["passed"]]
    assert failures == []
    assert task.aggregate(verdicts) == {"pass@1": 1.0}
    assert seconds < 60, f"164 canonical solutions took {seconds:.1f}s on 2 workers"


def test_humaneval_wrong_and_chat_style_solutions():
    task = get_task("humaneval")
    doc = task.docs()[0]  # has_close_elements
    assert not task.evaluate(doc, "    return False\n")["passed"]
    whole = f"Sure!\n```python\n{doc['prompt']}{doc['canonical_solution']}```"
    assert task.evaluate(doc, whole)["passed"]


def test_mbpp_local_copy_prompt_and_checking(tmp_path):
    (tmp_path / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in MBPP_ROWS))
    task = get_task("mbpp", data_path=tmp_path)
    docs = task.docs()
    assert [task.evaluate(d, task.reference_output(d))["passed"] for d in docs] == [True, True]
    assert not task.evaluate(docs[1], "def square(x):\n    return x + x\n[DONE]")["passed"]
    prompt = task.build_prompt(docs[1], num_fewshot=1)
    assert prompt.endswith("assert square(0) == 0\n[BEGIN]\n") and "[DONE]" in prompt
    assert "remove_Occ" in prompt  # the one few-shot example is the other problem


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_score_cli_humaneval_like_evaluate_functional_correctness(tmp_path):
    task = get_task("humaneval")
    docs = task.docs()[:3]
    rows = []
    for d in docs:
        rows.append({"task_id": d["task_id"], "completion": d["canonical_solution"]})
        rows.append({"task_id": d["task_id"], "completion": "    return None\n"})
    samples = _write_jsonl(tmp_path / "samples.jsonl", rows)
    out = tmp_path / "scored.json"
    assert eval_main(["score", "--task", "humaneval", "--samples", str(samples), "--output", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["pass@1"] == pytest.approx(0.5) and report["n"] == 6
    assert [s["passed"] for s in report["samples"]] == [True, False] * 3
    assert [s["task_id"] for s in report["samples"]] == [r["task_id"] for r in rows]
    assert all(s["correct"] == s["passed"] for s in report["samples"])


def test_score_cli_rejects_bad_samples_naming_the_line(tmp_path, capsys):
    samples = _write_jsonl(
        tmp_path / "s.jsonl",
        [
            {"task_id": "HumanEval/0", "completion": "    pass\n"},
            {"task_id": "HumanEval/999", "completion": ""},
        ],
    )
    code = eval_main(
        ["score", "--task", "humaneval", "--samples", str(samples), "--output", str(tmp_path / "o.json")]
    )
    assert code == 2 and "s.jsonl:2" in capsys.readouterr().err
