"""Verification: math-verify against a reference, majority vote, tasks, code in the sandbox, scorer."""

from __future__ import annotations

import pytest

from infir.synth.config import SynthConfig
from infir.synth.items import Candidate, Item
from infir.synth.loopback import LoopbackServer
from infir.synth.scorers import parse_judge_score
from infir.synth.verify import Verifier, committed_answer


def item(id="q", reference=None, domain="math", task=None, doc=None, prompt="What is 6 times 2?") -> Item:
    return Item(
        id=id, prompt=prompt, domain=domain, source="t", seed_id=id, reference=reference, task=task, doc=doc
    )


def cands(item_id: str, *texts, finish="stop") -> list[Candidate]:
    return [Candidate(item_id, i, t, finish) for i, t in enumerate(texts)]


def run(verifier: Verifier, it: Item, cs: list[Candidate], **kw):
    consensus = verifier.verify([it], {it.id: cs}, **kw)
    return [(c.verified, c.reason) for c in cs], consensus


@pytest.mark.parametrize(
    "text, kind, answer",
    [
        ("6*2=12.\nThe answer is 12.", "sentence", "The answer is 12."),
        ("so \\boxed{3} first, then \\boxed{12}.", "boxed", "12"),
        ("6*2=12\n#### 12", "sentence", "#### 12"),
        ("Thus the final answer is $1,234 dollars.\nDone", "sentence", "the final answer is $1,234 dollars."),
        ("6*2=12.\n**Final answer:** 12", "sentence", "**Final answer:** 12"),
        ("Answer: 12 pens", "sentence", "Answer: 12 pens"),
        ("It is probably twelve.", None, None),
        ("The question asks for an answer: we think 12", None, None),
    ],
)
def test_committed_answer(text, kind, answer):
    found = committed_answer(text)
    assert (found == (kind, answer)) if kind else found is None


def test_math_verify_against_the_reference():
    verifier = Verifier(SynthConfig())
    it = item(reference="1234")
    verdicts, _ = run(
        verifier,
        it,
        cands(
            "q",
            "steps\nThe answer is 1234.",
            "steps\nThe final answer is $\\boxed{1,234}$.",
            "steps\n#### 1,234",
            "steps\nThe answer is $1,234 dollars.",
            "steps\nThe answer is 1243.",
            "I think it is 1234",
            "",
        )
        + [
            Candidate("q", 7, "steps\nThe answer is 1234.", "length"),
            Candidate("q", 8, "", "error", error="http_500: boom"),
        ],
    )
    assert verdicts == [(True, "verified")] * 4 + [
        (False, "wrong_answer"),
        (False, "no_final_answer"),
        (False, "empty"),
        (False, "truncated"),
        (False, "request_failed"),
    ]


def test_math_verify_equivalent_forms():
    verifier = Verifier(SynthConfig())
    it = item(reference="\\frac{1}{2}")
    verdicts, _ = run(
        verifier, it, cands("q", "So \\boxed{0.5}", "So \\boxed{\\dfrac{2}{4}}", "So \\boxed{2}")
    )
    assert [v for v, _ in verdicts] == [True, True, False]


def test_majority_vote_without_reference():
    verifier = Verifier(SynthConfig())
    it = item()
    verdicts, consensus = run(
        verifier, it, cands("q", "The answer is 12.", "so \\boxed{12}", "#### 12.0", "The answer is 13.")
    )
    assert verdicts == [(True, "verified_majority")] * 3 + [(False, "disagrees_with_majority")]
    assert verifier.math.equal(("reference", "12"), consensus["q"])


@pytest.mark.parametrize(
    "texts",
    [
        ("The answer is 1.", "The answer is 2.", "The answer is 3.", "The answer is 4."),  # no agreement
        ("The answer is 1.", "The answer is 1.", "The answer is 2.", "The answer is 2."),  # a tie
        ("The answer is 1.", "no idea", "no idea", "no idea"),  # one vote is not a majority
    ],
)
def test_no_majority(texts):
    verdicts, consensus = run(Verifier(SynthConfig()), item(), cands("q", *texts))
    assert not any(v for v, _ in verdicts) and consensus == {}
    assert {r for _, r in verdicts} <= {"no_majority", "no_final_answer"}


def test_min_agreement_and_disabled_vote():
    strict = SynthConfig.model_validate({"verify": {"math": {"min_agreement": 0.75}}})
    texts = ("The answer is 5.", "The answer is 5.", "The answer is 6.", "The answer is 7.")
    verdicts, _ = run(Verifier(strict), item(), cands("q", *texts))
    assert not any(v for v, _ in verdicts)  # 2 of 4 agree, 3 needed
    verdicts, _ = run(Verifier(SynthConfig()), item(), cands("q", *texts))
    assert [v for v, _ in verdicts] == [True, True, False, False]
    no_vote = SynthConfig.model_validate({"verify": {"math": {"majority_vote": False}}})
    verdicts, _ = run(Verifier(no_vote), item(), cands("q", *texts))
    assert {r for _, r in verdicts} == {"no_reference"}


def test_explicit_reference_overrides_and_does_not_vote():
    verdicts, _ = run(
        Verifier(SynthConfig()),
        item(),
        cands("q", "The answer is 5.", "The answer is 6."),
        references={"q": ("sentence", "The answer is 6.")},
        vote=False,
    )
    assert verdicts == [(False, "wrong_answer"), (True, "verified")]


MBPP_DOC = {
    "task_id": 1,
    "text": "Write a function add(a, b) returning the sum.",
    "code": "",
    "test_list": ["assert add(1, 2) == 3", "assert add(-1, 1) == 0"],
}


def test_code_is_run_against_its_tests_in_the_sandbox():
    verifier = Verifier(SynthConfig())
    it = item(domain="code", task="mbpp", doc=MBPP_DOC, prompt=MBPP_DOC["text"])
    verdicts, _ = run(
        verifier,
        it,
        cands(
            "q",
            "Here:\n```python\ndef add(a, b):\n    return a + b\n```",
            "```python\ndef add(a, b):\n    return a - b\n```",
            "```python\ndef add(a, b):\n    raise SystemExit(3)\n```",
        ),
    )
    assert verdicts == [(True, "verified"), (False, "tests_failed"), (False, "tests_failed")]


def test_code_without_tests_or_scorer_is_unverifiable():
    verdicts, _ = run(
        Verifier(SynthConfig()),
        item(domain="code", prompt="write add"),
        cands("q", "```python\ndef add(a, b): return a + b\n```"),
    )
    assert verdicts == [(False, "unverifiable")]


def test_registry_task_judges_with_question_and_answer():
    cfg = SynthConfig.model_validate({"verify": {"math": {"method": "task", "task": "reasoning"}}})
    verdicts, _ = run(
        Verifier(cfg),
        item(reference="12"),
        cands("q", "6 * 2 = 12. The answer is 12.", "6 * 2 = 11. The answer is 11."),
    )
    assert verdicts == [(True, "verified"), (False, "wrong_answer")]


def test_scorer_verifies_general_answers_over_http():
    with LoopbackServer(
        lambda body: "unused", score=lambda body: 0.9 if "because" in body["response"] else 0.2
    ) as server:
        cfg = SynthConfig.model_validate(
            {"scorer": {"type": "http", "base_url": server.url, "threshold": 0.5}}
        )
        from infir.synth.scorers import build_scorer

        verifier = Verifier(cfg, build_scorer(cfg.scorer, None, "scorer"))
        verdicts, _ = run(
            verifier,
            item(domain="general", prompt="Why is the sky blue?"),
            cands("q", "Blue, because of Rayleigh scattering.", "It just is."),
        )
        assert verdicts == [(True, "verified"), (False, "low_score")]


@pytest.mark.parametrize(
    "reply, score",
    [
        ("Clear and correct.\nScore: 8", 0.8),
        ("**Score:** 10/10", 1.0),
        ("I'd give it 3", 0.3),
        ("no number", None),
        ("Score: 15", 1.0),
    ],
)
def test_judge_score_parsing(reply, score):
    assert parse_judge_score(reply, 10.0) == score
