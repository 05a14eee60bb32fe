"""The tiny recipe's generated teacher: correct solutions are the corpus's, a configured share is wrong."""

from __future__ import annotations

import pytest

from infir.data import reasoning
from infir.synth.config import TeacherConfig
from infir.synth.generated import CANNOT, GeneratedTeacher, evolve_question, solve, write
from infir.synth.teachers import ChatRequest

FAMILIES = ("chain_sum", "basic_arithmetic", "simple_equations")


@pytest.fixture(scope="module")
def problems():
    return [p for f in FAMILIES for p in reasoning.generate(f, 100, seed=5)]


def ask(teacher, questions, seeds=(0,), purpose="answer", strategy=None):
    reqs = [
        ChatRequest(
            [{"role": "user", "content": q}],
            0.7,
            256,
            seed=s,
            purpose=purpose,
            hint={"question": q, **({"strategy": strategy} if strategy else {})},
        )
        for q in questions
        for s in seeds
    ]
    return [c.text for c in teacher.complete(reqs)]


def test_correct_answers_are_the_corpus_solutions(problems):
    for p in problems:
        assert write(*solve(p.question)) == p.solution


@pytest.mark.parametrize("wrong_fraction", [0.0, 0.3, 1.0])
def test_wrong_fraction_is_what_was_configured(problems, wrong_fraction):
    teacher = GeneratedTeacher(
        TeacherConfig(wrong_fraction=wrong_fraction, seed=1), None, show_progress=False
    )
    texts = ask(teacher, [p.question for p in problems], seeds=(0, 1, 2))
    answers = [p.answer for p in problems for _ in range(3)]
    wrong = [reasoning.extract_answer(t) != a for t, a in zip(texts, answers)]
    share = sum(wrong) / len(wrong)
    assert abs(share - wrong_fraction) <= 0.05, share
    for t, a, w in zip(texts, answers, wrong):
        assert t.endswith(".") and reasoning.extract_answer(t) is not None
        if w:  # a wrong solution is wrong in its last step too, not just in the final line
            assert t.split(". The answer is")[0].endswith(reasoning.extract_answer(t))


def test_answers_are_deterministic_per_request(problems):
    cfg = TeacherConfig(wrong_fraction=0.5, seed=3)
    questions = [p.question for p in problems[:50]]
    one = ask(GeneratedTeacher(cfg, None, show_progress=False), questions, seeds=(0, 1))
    two = ask(GeneratedTeacher(cfg, None, show_progress=False), questions, seeds=(0, 1))
    assert one == two
    assert one[0::2] != one[1::2]  # another sample seed draws other mistakes


def test_unreadable_questions_get_no_answer():
    teacher = GeneratedTeacher(TeacherConfig(), None, show_progress=False)
    assert ask(teacher, ["Who wrote Hamlet?"]) == [CANNOT]


@pytest.mark.parametrize("strategy", ["harder", "constrained", "diverse"])
def test_evolved_problems_are_new_and_solvable(problems, strategy):
    teacher = GeneratedTeacher(TeacherConfig(), None, show_progress=False)
    questions = [p.question for p in problems[::10]]
    rewrites = ask(teacher, questions, purpose="evolve", strategy=strategy)
    for q, r in zip(questions, rewrites):
        assert solve(r) is not None, r
        if strategy == "harder":
            assert len(solve(r)[0]) >= len(solve(q)[0]), (q, r)
    assert sum(r != q for q, r in zip(questions, rewrites)) >= 0.8 * len(questions)


def test_evolve_leaves_unreadable_questions_unchanged():
    assert evolve_question("Who wrote Hamlet?", "harder", 3) == "Who wrote Hamlet?"


def test_judging_is_refused_with_a_reason():
    teacher = GeneratedTeacher(TeacherConfig(), None, show_progress=False)
    out = teacher.complete([ChatRequest([{"role": "user", "content": "rate"}], 0.0, 8, 0, purpose="judge")])
    assert out[0].error and "judge" in out[0].error
