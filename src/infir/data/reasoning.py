"""Procedurally generated math problems with step-by-step solutions.

reasoning-gym generates the problems; this module writes the worked solutions a
small model can learn from (one arithmetic step per sentence, ending in
"The answer is N."). Train and held-out problems are split by a hash of the
question text, so any seed, size or consumer (corpus, SFT, evaluation) agrees on
which problems are held out without coordinating.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import operator
import re
from dataclasses import asdict, dataclass
from fractions import Fraction
from typing import Iterator, Literal

Split = Literal["train", "heldout", "all"]

ANSWER_PREFIX = "The answer is"
# The families the tiny recipe's held-out task evaluates on (and RL trains on by default), and the share of
# each family's problems held out: every consumer reads these, so their train/held-out splits agree.
DEFAULT_FAMILIES = ("chain_sum", "basic_arithmetic", "simple_equations")
HELDOUT_FRACTION = 0.1

# Defaults keep the problems within reach of a model of a few million parameters trained for minutes on
# a CPU: one-digit operands, so every step is a fact it can learn, and several steps per problem, so
# the final answer still needs the chain of steps (and the copying of operands) to be right.
FAMILY_DEFAULTS: dict[str, dict] = {
    "chain_sum": {"min_terms": 2, "max_terms": 4, "min_digits": 1, "max_digits": 1},
    "basic_arithmetic": {
        "min_terms": 2,
        "max_terms": 3,
        "min_digits": 1,
        "max_digits": 1,
        "operators": ("+", "-", "*"),
        "allow_parentheses": True,
        "allow_negation": False,
    },
    "simple_equations": {
        "min_terms": 2,
        "max_terms": 2,
        "min_value": 1,
        "max_value": 10,
        "operators": ("+", "-", "*"),
    },
    "gsm_symbolic": {},
}


@dataclass(frozen=True)
class Problem:
    family: str
    question: str
    answer: str
    solution: str

    def to_dict(self) -> dict:
        return asdict(self)


def is_heldout(question: str, fraction: float = 0.1) -> bool:
    digest = hashlib.blake2b(question.strip().encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 < fraction


def _fmt(x: Fraction | int) -> str:
    x = Fraction(x)
    return str(x.numerator) if x.denominator == 1 else f"{float(x):g}"


_OPS = {
    ast.Add: ("+", operator.add),
    ast.Sub: ("-", operator.sub),
    ast.Mult: ("*", operator.mul),
    ast.Div: ("/", operator.truediv),
}


def arithmetic_steps(expression: str) -> tuple[list[str], Fraction]:
    """Evaluate `expression` innermost-first, one binary operation per step."""
    steps: list[str] = []

    def ev(node: ast.AST) -> Fraction:
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return Fraction(node.value)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            inner = ev(node.operand)
            if isinstance(node.operand, ast.Constant):
                return -inner if isinstance(node.op, ast.USub) else inner
            value = -inner if isinstance(node.op, ast.USub) else inner
            steps.append(f"-({_fmt(inner)}) = {_fmt(value)}.")
            return value
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            left, right = ev(node.left), ev(node.right)
            symbol, fn = _OPS[type(node.op)]
            value = fn(left, right)
            steps.append(f"{_fmt(left)} {symbol} {_fmt(right)} = {_fmt(value)}.")
            return value
        raise ValueError(f"unsupported expression: {expression!r}")

    value = ev(ast.parse(expression.strip().rstrip("=").strip(), mode="eval").body)
    return steps, value


_LINEAR = re.compile(r"^\s*(?P<lhs>.+?)\s*=\s*(?P<rhs>-?\d+)\s*$")


def linear_equation_steps(equation: str, variable: str) -> tuple[list[str], Fraction]:
    """Solve `a*x + b = c` (in any term order) with the moves a student writes down."""
    m = _LINEAR.match(equation)
    if not m:
        raise ValueError(f"unsupported equation: {equation!r}")
    lhs, rhs = m["lhs"], Fraction(int(m["rhs"]))
    # The left side is linear in the variable: read it off at two points.
    f = lambda x: Fraction(eval(lhs.replace(variable, f"({x})"), {"__builtins__": {}}))  # noqa: E731
    b = f(0)
    a = f(1) - b
    steps = []
    if b != 0:
        moved = rhs - b
        verb = f"Subtract {_fmt(b)} from both sides" if b > 0 else f"Add {_fmt(-b)} to both sides"
        steps.append(f"{verb}: {_fmt(a)}*{variable} = {_fmt(rhs)} - {_fmt(b)} = {_fmt(moved)}.")
    else:
        moved = rhs
    value = moved / a
    if a != 1:
        steps.append(
            f"Divide both sides by {_fmt(a)}: {variable} = {_fmt(moved)} / {_fmt(a)} = {_fmt(value)}."
        )
    return steps, value


def write_solution(family: str, question: str, answer: str, metadata: dict) -> str:
    if family in ("chain_sum", "basic_arithmetic"):
        steps, value = arithmetic_steps(metadata["expression"])
    elif family == "simple_equations":
        steps, value = linear_equation_steps(metadata["equation"], metadata["variable"])
    elif family == "gsm_symbolic":
        cot = metadata["answer_cot"].split("####")[0].strip()
        return f"{cot}\n{ANSWER_PREFIX} {answer}."
    else:
        raise ValueError(f"no step-by-step writer for reasoning-gym family {family!r}")
    if _fmt(value) != str(answer).strip():
        raise ValueError(f"{family}: worked solution gives {_fmt(value)}, reasoning-gym says {answer}")
    if not steps:
        steps = [f"{_fmt(value)}."]
    return " ".join(steps) + f" {ANSWER_PREFIX} {answer}."


def generate(
    family: str,
    n: int,
    seed: int,
    split: Split = "train",
    heldout_fraction: float = HELDOUT_FRACTION,
    **params,
) -> list[Problem]:
    """`n` distinct problems of one family from `split` (deterministic in all arguments)."""
    if params:
        return list(_iter_problems(family, n, seed, split, heldout_fraction, params))
    return list(_generated(family, n, seed, split, heldout_fraction))


@functools.lru_cache(maxsize=32)
def _generated(family: str, n: int, seed: int, split: Split, heldout_fraction: float) -> tuple[Problem, ...]:
    # Kept because every consumer in a process asks again for the same problems (the eval stage once per
    # checkpoint), and a held-out split means generating ten times as many to keep one in ten.
    return tuple(_iter_problems(family, n, seed, split, heldout_fraction, {}))


def _iter_problems(
    family: str, n: int, seed: int, split: Split, heldout_fraction: float, params: dict
) -> Iterator[Problem]:
    import reasoning_gym

    cfg = {**FAMILY_DEFAULTS.get(family, {}), **params}
    seen: set[str] = set()
    produced, attempt = 0, 0
    while produced < n:
        if attempt > 30:
            raise ValueError(f"{family}: could not find {n} distinct {split} problems with {cfg}")
        size = max(64, 2 * n) if split != "heldout" else max(64, int(2 * n / max(heldout_fraction, 1e-3)))
        ds = reasoning_gym.create_dataset(family, size=size, seed=seed * 1009 + attempt, **cfg)
        for item in ds:
            q = item["question"].strip()
            if q in seen:
                continue
            held = is_heldout(q, heldout_fraction)
            if (split == "train" and held) or (split == "heldout" and not held):
                continue
            seen.add(q)
            answer = str(item["answer"]).strip()
            yield Problem(family, q, answer, write_solution(family, q, answer, item["metadata"]))
            produced += 1
            if produced >= n:
                return
        attempt += 1


def extract_answer(text: str) -> str | None:
    """The final answer after the last "The answer is", normalised for exact match."""
    idx = text.rfind(ANSWER_PREFIX)
    if idx < 0:
        return None
    m = re.match(r"\s*(-?[\d,]*\.?\d+)", text[idx + len(ANSWER_PREFIX) :])
    return m.group(1).replace(",", "") if m else None
