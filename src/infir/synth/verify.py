"""Verification of candidate answers: math-verify, registry Tasks (code in the sandbox), or a scorer.

- math: the answer a solution commits to (its last `\\boxed{}`, else its `####` line, else its last
  "The answer is ..." or "Final answer: ..." line) is parsed by math-verify and compared with the
  seed's reference; without a reference, candidates vote: the largest group of equivalent answers wins
  when it has at least `min_votes` members and `min_agreement` of all candidates, and is strictly
  larger than the next.
- task: a registry Task's `evaluate(doc, output)` judges, the seed record being the document; for code
  tasks (mbpp, humaneval) that runs the tests in `infir.eval.sandbox`.
- scorer: a reward model or judge score of at least the scorer's threshold.

Each candidate gets `verified`, `reason` (why it was kept or rejected), `method` and the `answer` read.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Sequence

from infir.eval.answers import last_boxed, math_equal, parse_gold, parse_math, shown
from infir.synth.config import DomainVerify, SynthConfig
from infir.synth.items import Candidate, Item

_HASHES_LINE = re.compile(r"####[ \t]*([^\n]*)")
# "The answer is 18." anywhere, or a line starting "Answer:" / "**Final answer:**".
_ANSWER_IS = re.compile(r"[Tt]he (?:final )?answer is\b|(?:^|\n)[ \t*_#>-]*(?:[Ff]inal )?[Aa]nswer[ \t*_]*:")
# A reference answer: a bare answer text (the seed's), or (kind, text) as `committed_answer` gives.
Answer = str | tuple[str, str]


def committed_answer(output: str) -> tuple[str, str] | None:
    """(kind, text) of the final answer a solution commits to, or None when it commits to none."""
    boxed = last_boxed(output)
    if boxed is not None and boxed.strip():
        return "boxed", boxed.strip()
    hashes = _HASHES_LINE.findall(output)
    if hashes and hashes[-1].strip():
        return "sentence", "#### " + hashes[-1].strip()
    starts = [m.start() for m in _ANSWER_IS.finditer(output)]
    if starts:
        sentence = output[starts[-1] :].lstrip("\n").split("\n", 1)[0].strip()
        return "sentence", sentence
    return None


class MathJudge:
    """math-verify parsing and comparison, memoised: candidates repeat the same few answers."""

    def __init__(self):
        self._parsed: dict[tuple[str, str], list] = {}
        self._equal: dict[tuple[tuple[str, str], tuple[str, str]], bool] = {}

    def parse(self, kind: str, text: str) -> list:
        key = (kind, text)
        if key not in self._parsed:
            # A box's content or a bare reference is parsed as a box; a sentence lets math-verify find
            # the answer in it ("The answer is $1,234 dollars." -> 1234).
            self._parsed[key] = parse_gold(text) if kind in ("boxed", "reference") else parse_math(text)
        return self._parsed[key]

    def equal(self, a: tuple[str, str], b: tuple[str, str]) -> bool:
        if a == b:
            return bool(self.parse(*a))
        key = (a, b) if a <= b else (b, a)
        if key not in self._equal:
            self._equal[key] = math_equal(self.parse(*a), self.parse(*b))
        return self._equal[key]

    def shown(self, answer: tuple[str, str]) -> str | None:
        return shown(self.parse(*answer))


def _precheck(c: Candidate) -> str | None:
    if c.error is not None:
        return "request_failed"
    if c.finish_reason == "length":
        return "truncated"
    if not c.text.strip():
        return "empty"
    return None


def _reject(c: Candidate, reason: str, method: str) -> None:
    c.verified, c.reason, c.method = False, reason, method


def _accept(c: Candidate, reason: str, method: str) -> None:
    c.verified, c.reason, c.method = True, reason, method


class Verifier:
    def __init__(self, cfg: SynthConfig, scorer=None):
        self.cfg = cfg
        self.scorer = scorer
        self.math = MathJudge()
        self._tasks: dict[str, object] = {}

    def method(self, item: Item) -> tuple[str, DomainVerify]:
        spec = self.cfg.verify.get(item.domain) or DomainVerify()
        if spec.method != "auto":
            return spec.method, spec
        if item.task is not None:
            return "task", spec
        if item.domain == "math":
            return "math_verify", spec
        if self.scorer is not None:
            return "scorer", spec
        return "unverifiable", spec

    def task(self, name: str):
        if name not in self._tasks:
            from infir.eval.registry import get_task

            self._tasks[name] = get_task(name)
        return self._tasks[name]

    def verify(
        self,
        items: Sequence[Item],
        candidates: dict[str, list[Candidate]],
        references: dict[str, Answer] | None = None,
        vote: bool = True,
    ) -> dict[str, tuple[str, str]]:
        """Judge every candidate in place. `references` overrides items' own (difficulty checks the
        reference model against the teacher's consensus). Returns {item id: the agreed answer} for
        items verified by majority vote, in the form `references` takes."""
        by_method: dict[str, list[Item]] = defaultdict(list)
        for item in items:
            by_method[self.method(item)[0]].append(item)
        consensus: dict[str, tuple[str, str]] = {}
        for item in by_method.get("math_verify", []):
            ref = (references or {}).get(item.id, item.reference)
            agreed = self._math(item, candidates.get(item.id, []), ref, vote)
            if agreed is not None:
                consensus[item.id] = agreed
        self._tasks_verify(by_method.get("task", []), candidates)
        self._score(by_method.get("scorer", []), candidates)
        for item in by_method.get("unverifiable", []):
            for c in candidates.get(item.id, []):
                _reject(c, _precheck(c) or "unverifiable", "none")
        return consensus

    # ---- math ------------------------------------------------------------------------------------
    def _math(
        self, item: Item, cands: list[Candidate], reference: Answer | None, vote: bool
    ) -> tuple[str, str] | None:
        spec = self.method(item)[1]
        answers: list[tuple[Candidate, tuple[str, str]]] = []
        for c in cands:
            reason = _precheck(c)
            if reason is None:
                committed = committed_answer(c.text)
                if committed is None or not self.math.parse(*committed):
                    reason = "no_final_answer"
                else:
                    c.answer = self.math.shown(committed)
                    answers.append((c, committed))
            if reason is not None:
                _reject(c, reason, "math_verify")
        if reference is not None:
            gold = reference if isinstance(reference, tuple) else ("reference", reference)
            for c, ans in answers:
                if self.math.equal(gold, ans):
                    _accept(c, "verified", "math_verify")
                else:
                    _reject(c, "wrong_answer", "math_verify")
            return None
        if not (vote and spec.majority_vote):
            for c, _ in answers:
                _reject(c, "no_reference", "math_verify")
            return None
        groups: list[list[tuple[Candidate, tuple[str, str]]]] = []
        for pair in answers:
            for group in groups:
                if self.math.equal(group[0][1], pair[1]):
                    group.append(pair)
                    break
            else:
                groups.append([pair])
        groups.sort(key=len, reverse=True)
        top = groups[0] if groups else []
        runner_up = len(groups[1]) if len(groups) > 1 else 0
        wins = (
            len(top) >= spec.min_votes
            and len(top) > runner_up
            and len(top) >= spec.min_agreement * max(len(cands), 1)
        )
        for group in groups:
            for c, _ in group:
                if wins and group is top:
                    _accept(c, "verified_majority", "majority_vote")
                else:
                    _reject(c, "disagrees_with_majority" if wins else "no_majority", "majority_vote")
        return top[0][1] if wins else None

    # ---- tasks (code runs in the sandbox) ------------------------------------------------------------
    def _tasks_verify(self, items: list[Item], candidates: dict[str, list[Candidate]]) -> None:
        by_task: dict[str, list[tuple[dict, Candidate]]] = defaultdict(list)
        for item in items:
            name = item.task or self.method(item)[1].task
            for c in candidates.get(item.id, []):
                reason = _precheck(c)
                if reason is not None:
                    _reject(c, reason, "task")
                elif name is None:
                    _reject(c, "unverifiable", "task")
                else:
                    doc = (
                        item.doc
                        if item.doc is not None
                        else {"question": item.prompt, "answer": item.reference}
                    )
                    by_task[name].append((doc, c))
        for name, pairs in by_task.items():
            task = self.task(name)
            verdicts = task.evaluate_many(
                [d for d, _ in pairs],
                [c.text for _, c in pairs],  # type: ignore[attr-defined]
                workers=self.cfg.sandbox_workers,
            )
            for (_, c), v in zip(pairs, verdicts):
                c.answer = None if v.get("extracted") is None else str(v["extracted"])[:200]
                if v["correct"]:
                    _accept(c, "verified", f"task:{name}")
                else:
                    status = str(v.get("result", "")).split(":", 1)[0]
                    reason = (
                        "wrong_answer"
                        if "result" not in v
                        else ("tests_failed" if status == "failed" else f"sandbox_{status}")
                    )
                    _reject(c, reason, f"task:{name}")

    # ---- reward model / judge ----------------------------------------------------------------------
    def _score(self, items: list[Item], candidates: dict[str, list[Candidate]]) -> None:
        pairs: list[tuple[Item, Candidate]] = []
        for item in items:
            for c in candidates.get(item.id, []):
                reason = _precheck(c)
                if reason is not None:
                    _reject(c, reason, "scorer")
                else:
                    pairs.append((item, c))
        if not pairs:
            return
        scores = self.scorer.score_many([(i.prompt, c.text) for i, c in pairs], "verify")  # type: ignore[union-attr]
        threshold = self.scorer.cfg.threshold  # type: ignore[union-attr]
        for (_, c), score in zip(pairs, scores):
            c.score = score
            if score is None:
                _reject(c, "scorer_failed", "scorer")
            elif score >= threshold:
                _accept(c, "verified", "scorer")
            else:
                _reject(c, "low_score", "scorer")
