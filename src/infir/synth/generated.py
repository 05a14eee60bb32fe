"""The tiny recipe's teacher: worked solutions for generated problems, a configured share of them wrong.

It reads the arithmetic expression or linear equation out of a question (the wordings of
`infir.data.reasoning`'s families: "Calculate -69 + 13.", "...problem: 15 + 25 =", "Solve for f:
16*f - 4 = 60") and writes the solution with the same step writers the corpus uses, so a correct answer
is exactly what the tiny SFT data would hold. A request is answered wrongly when a hash of (teacher seed,
question, request seed) falls under `wrong_fraction`: the last step's result and the final answer are
shifted, as a careless model would, so only checking the answer catches it. Evolution requests get a
rewritten problem (an extra term, a scaled equation, other numbers), which it can then solve too.
Questions it cannot read get "I cannot solve this problem.", which verification rejects.
"""

from __future__ import annotations

import functools
import re
from fractions import Fraction
from typing import Sequence

from infir.data.reasoning import ANSWER_PREFIX, _fmt, arithmetic_steps, linear_equation_steps
from infir.synth.cache import ResponseCache
from infir.synth.config import TeacherConfig
from infir.synth.items import stable_fraction, stable_int
from infir.synth.teachers import ChatRequest, Completion, Done, Teacher

_EXPRESSION = re.compile(r"[-(\d][\d\s+\-*/().]*")
_OPERATOR = re.compile(r"\d\s*[-+*/]\s*[-(]*\d")
_NUMBER = re.compile(r"(?<![\w.])\d+(?![\w.])")
CANNOT = "I cannot solve this problem."


def _equation(question: str) -> tuple[str, str, str] | None:
    """(equation, variable, the text it came from) when the question holds `lhs = integer` in one letter."""
    segment = question.rsplit(":", 1)[-1].strip().rstrip(".?").strip()
    if segment.count("=") != 1:
        return None
    lhs, rhs = (s.strip() for s in segment.split("="))
    letters = set(re.findall(r"(?<![A-Za-z])[a-z](?![A-Za-z])", lhs))
    if len(letters) != 1 or not re.fullmatch(r"-?\d+", rhs) or re.search(r"[A-Za-z]{2,}", lhs):
        return None
    return f"{lhs} = {rhs}", letters.pop(), segment


def _expression(question: str) -> str | None:
    """The longest arithmetic expression in the question (at least one operator between numbers)."""
    found = [m.group(0).strip() for m in _EXPRESSION.finditer(question)]
    found = [e.rstrip(".=").strip() for e in found if _OPERATOR.search(e)]
    return max(found, key=len) if found else None


@functools.lru_cache(maxsize=65536)  # the N samples of a question solve it once
def solve(question: str) -> tuple[list[str], Fraction] | None:
    eq = _equation(question)
    try:
        if eq is not None:
            return linear_equation_steps(eq[0], eq[1])
        expr = _expression(question)
        if expr is not None:
            return arithmetic_steps(expr)
    except (ValueError, ZeroDivisionError, SyntaxError):
        return None
    return None


def write(steps: list[str], value: Fraction, shift: int = 0) -> str:
    """The solution text; with `shift`, the last step's result and the answer are off by that much."""
    answer = _fmt(value)
    if shift:
        wrong = _fmt(value + shift)
        if steps and steps[-1].endswith(f"= {answer}."):
            steps = steps[:-1] + [steps[-1][: -len(answer) - 1] + f"{wrong}."]
        answer = wrong
    steps = steps or [f"{answer}."]
    return " ".join(steps) + f" {ANSWER_PREFIX} {answer}."


def evolve_question(question: str, strategy: str, salt: int) -> str:
    """A rewritten problem: `harder` adds work, `constrained` adds a term that must be undone, `diverse`
    changes the numbers. Unreadable questions come back unchanged (evolution then rejects them)."""
    eq = _equation(question)
    if eq is not None:
        equation, var, segment = eq
        lhs, rhs = (s.strip() for s in equation.split("="))
        k = 2 + salt % 4
        if strategy == "harder":
            new = f"{k}*({lhs}) = {k * int(rhs)}"
        elif strategy == "constrained":
            new = f"{lhs} + {k} = {int(rhs) + k}"
        else:
            f = lambda x: Fraction(eval(lhs.replace(var, f"({x})"), {"__builtins__": {}}))  # noqa: E731
            x = 1 + salt % 12
            value = f(x)
            if value.denominator != 1:
                return question
            new = f"{lhs} = {value.numerator}"
        return question.replace(segment, new)
    expr = _expression(question)
    if expr is None:
        return question
    if strategy == "harder":
        op = "+-*"[salt % 3]
        new = f"{expr} {op} {2 + salt % 8 if op == '*' else 1 + salt % 30}"
    elif strategy == "constrained":
        new = f"({expr}) * {2 + salt % 5}"
    else:
        counter = iter(range(1000))
        new = _NUMBER.sub(
            lambda m: str(
                max(1, (int(m.group(0)) + 1 + (salt + next(counter)) % 17) % (10 ** len(m.group(0))))
            ),
            expr,
        )
    return question.replace(expr, new, 1)


class GeneratedTeacher(Teacher):
    write_batch = 512

    def __init__(
        self,
        cfg: TeacherConfig,
        cache: ResponseCache | None,
        role: str = "teacher",
        show_progress: bool = True,
    ):
        super().__init__(cache, role, show_progress)
        self.cfg = cfg
        self.namespace = cfg.cache_namespace or f"generated:{cfg.seed}:{cfg.wrong_fraction}"

    def body(self, req: ChatRequest) -> dict:
        return {
            "messages": req.messages,
            "temperature": req.temperature,
            "max_tokens": req.max_tokens,
            "seed": req.seed,
            "purpose": req.purpose,
        }

    def answer(self, question: str, request_seed: int) -> str:
        solved = solve(question)
        if solved is None:
            return CANNOT
        steps, value = solved
        shift = 0
        if stable_fraction(self.cfg.seed, "wrong", question, request_seed) < self.cfg.wrong_fraction:
            magnitude = 1 + stable_int(self.cfg.seed, "shift", question, request_seed) % 9
            shift = magnitude if stable_int(self.cfg.seed, "sign", question, request_seed) % 2 else -magnitude
        return write(steps, value, shift)

    def _complete(self, requests: Sequence[ChatRequest], done: Done) -> None:
        for j, req in enumerate(requests):
            question = req.hint.get("question") or next(
                (m["content"] for m in reversed(req.messages) if m["role"] == "user"), ""
            )
            if req.purpose == "answer":
                done(j, Completion(self.answer(question, req.seed)))
            elif req.purpose == "evolve":
                strategy = req.hint.get("strategy", "harder")
                done(j, Completion(evolve_question(question, strategy, stable_int(question, req.seed))))
            else:
                done(
                    j,
                    Completion(
                        "",
                        "error",
                        error=f"unsupported: the generated teacher answers and "
                        f"evolves problems; it cannot act as a {req.purpose}",
                    ),
                )
