"""Rewards: each checker through `Rewarder` (exact numbers, math-verify, the code sandbox) and the format term."""

import pytest

from infir.eval.registry import get_task
from infir.rl.config import RewardConfig
from infir.rl.rewards import Rewarder

DOC = {
    "family": "chain_sum",
    "question": "What is 3 + 5?",
    "answer": "8",
    "solution": "3 + 5 = 8. The answer is 8.",
}


@pytest.fixture(scope="module")
def reasoning():
    return get_task("reasoning")


def test_reasoning_reward_correct_wrong_malformed(reasoning):
    r = Rewarder(reasoning, RewardConfig(correct=1.0, format=0.0))
    good = r.score(DOC, "3 + 5 = 8. The answer is 8.")
    assert (good.total, good.correct, good.formatted) == (1.0, 1.0, True)
    wrong = r.score(DOC, "3 + 5 = 9. The answer is 9.")
    assert (wrong.total, wrong.correct, wrong.formatted) == (0.0, 0.0, True)
    malformed = r.score(DOC, "eight, I think")
    assert (malformed.total, malformed.correct, malformed.formatted) == (0.0, 0.0, False)
    assert r.score(DOC, "").total == 0.0
    assert r.score(DOC, "The answer is 8,000.").correct == 0.0  # 8000, not 8


def test_format_reward_wants_the_answer_sentence_last(reasoning):
    r = Rewarder(reasoning, RewardConfig(correct=1.0, format=0.25))
    assert r.score(DOC, "3 + 5 = 8. The answer is 8.").total == pytest.approx(1.25)
    assert r.score(DOC, "The answer is 7.").total == pytest.approx(0.25)  # formatted, wrong
    rambling = r.score(DOC, "The answer is 8. Then 8 + 1 = 9 and so on")
    assert rambling.correct == 1.0 and not rambling.formatted and rambling.total == pytest.approx(1.0)
    assert r.score(DOC, "The answer is -2.5.").formatted
    assert not r.score(DOC, "The answer is x.").formatted


def test_weights_and_bad_pattern(reasoning):
    only_format = Rewarder(reasoning, RewardConfig(correct=0.0, format=1.0))
    wrong = only_format.score(DOC, "The answer is 9.")
    assert wrong.total == 1.0 and wrong.correct == 0.0  # correctness is still judged (for accuracy)
    with pytest.raises(ValueError, match="format_pattern"):
        Rewarder(reasoning, RewardConfig(format_pattern="(unclosed"))


def test_math_verify_reward():
    task = get_task("math500", data_path="unused")
    doc = {"problem": "What is 1/2 + 1/4?", "solution": "... \\boxed{\\frac{3}{4}}", "answer": "\\frac{3}{4}"}
    r = Rewarder(task, RewardConfig(format_pattern=r"\\boxed\{.+\}\s*\$?$", format=0.5))
    assert r.score(doc, "So the sum is $\\boxed{0.75}$").total == pytest.approx(1.5)  # equivalent value
    assert r.score(doc, "So the sum is $\\boxed{\\frac{6}{8}}$").correct == 1.0
    assert r.score(doc, "So the sum is $\\boxed{\\frac{2}{3}}$").total == pytest.approx(0.5)
    assert r.score(doc, "no idea").total == 0.0


def test_code_reward_runs_in_the_sandbox():
    task = get_task("mbpp", data_path="unused", timeout=5.0)
    doc = {
        "task_id": 1,
        "text": "Add two numbers.",
        "code": "def add(a, b):\n    return a + b",
        "test_list": ["assert add(1, 2) == 3", "assert add(-1, 1) == 0"],
    }
    r = Rewarder(task, RewardConfig(workers=2, format_pattern="```$", format=0.0))
    outputs = [
        "```python\ndef add(a, b):\n    return a + b\n```",
        "```python\ndef add(a, b):\n    return a - b\n```",
        "```python\nimport os\nos.system('echo hi')\ndef add(a, b):\n    while True: pass\n```",
        "not code at all",
    ]
    scores = r.score_many([doc] * 4, outputs)
    assert [s.correct for s in scores] == [1.0, 0.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="4 docs but 3 outputs"):
        r.score_many([doc] * 4, outputs[:3])


def test_reasoning_gym_partial_credit_reward():
    task = get_task("rg:leg_counting", n=2, seed=0)
    doc = task.docs()[0]
    r = Rewarder(task, RewardConfig(format_pattern=r"</answer>$", format=0.1))
    right = r.score(doc, f"<answer>{doc['answer']}</answer>")
    assert right.correct == 1.0 and right.total == pytest.approx(1.1)
    assert r.score(doc, "<answer>-1</answer>").correct < 1.0
