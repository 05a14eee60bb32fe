"""Answer extraction and comparison shared by the math tasks.

Numbers (GSM8K, generated arithmetic) are compared exactly as decimals after removing the formatting a
model adds ("$1,234.00" == "1234"). LaTeX answers (MATH) go through math-verify, which parses both sides
to sympy and checks equivalence.
"""

from __future__ import annotations

import re
import threading
from decimal import Decimal, InvalidOperation

ANSWER_IS = re.compile(r"[Tt]he (?:final )?answer is[:\s]*\$?\s*(-?[\d,]*\.?\d+)")
HASHES = re.compile(r"####\s*\$?\s*(-?[\d,]*\.?\d+)")
# lm-evaluation-harness's flexible GSM8K pattern: the last number-like run (at least 2 chars) or integer.
ANY_NUMBER = re.compile(r"(-?[$0-9.,]{2,})|(-?[0-9]+)")


def normalize_number(text: str | None) -> str | None:
    """'$1,234.50.' -> '1234.5'; None when the text holds no number."""
    if text is None:
        return None
    cleaned = text.strip().replace(",", "").replace("$", "").rstrip(".")
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        return None
    if not value.is_finite():
        return None
    normalized = format(value.normalize(), "f")
    return "0" if normalized in ("-0", "0") else normalized


def strict_number(output: str) -> str | None:
    """The answer a solution commits to: the first `#### N`, else the last `The answer is N`."""
    m = HASHES.search(output)
    if m:
        return normalize_number(m.group(1))
    matches = ANSWER_IS.findall(output)
    return normalize_number(matches[-1]) if matches else None


def flexible_number(output: str) -> str | None:
    """The last number anywhere in the output."""
    for m in reversed(ANY_NUMBER.findall(output)):
        value = normalize_number(m[0] or m[1])
        if value is not None:
            return value
    return None


def last_boxed(text: str) -> str | None:
    """Content of the last `\\boxed{...}` (or `\\fbox{...}`), braces balanced; None when absent."""
    start = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if start < 0:
        return None
    i = text.find("{", start)
    if i < 0:
        return None
    if text[start:i].strip() not in ("\\boxed", "\\fbox"):
        # `\boxed 5` (no braces): the token up to the next space or `$`.
        m = re.match(r"\\boxed\s+([^\s$]+)", text[start:])
        return m.group(1) if m else None
    depth = 0
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1:j]
    return None


def _timeout() -> int | None:
    # math-verify bounds its sympy work with SIGALRM, which exists only in the main thread;
    # elsewhere (thread pools in RL or synthesis) it must run without that guard.
    return 5 if threading.current_thread() is threading.main_thread() else None


def parse_math(text: str):
    from math_verify import parse

    return parse(text, parsing_timeout=_timeout())


def parse_gold(answer: str):
    """Parse a bare reference answer (MATH-500's `answer` field) as the content of a box."""
    return parse_math("\\boxed{" + answer + "}")


def math_equal(gold, predicted) -> bool:
    from math_verify import verify

    if not gold or not predicted:
        return False
    return bool(verify(gold, predicted, timeout_seconds=_timeout()))


def shown(parsed) -> str | None:
    """The human-readable form of a math-verify parse (its string part), for samples files."""
    if not parsed:
        return None
    return str(parsed[-1]) if isinstance(parsed[-1], str) else str(parsed[0])
