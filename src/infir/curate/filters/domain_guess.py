"""A fast, rule-based guess of what a document is, to pick the rules that judge it.

Heuristic filtering runs before the recall classifiers (InfiR's order), so it cannot use their
verdict; this guess only chooses a rule set. Four kinds: `code` (program text), `math` (LaTeX or
worked arithmetic), `technical` (documentation, manual pages: prose dense with identifiers,
options and markup) and `prose` (everything else: the web rules apply). A source's domain hint
(math or code) is trusted. The guess reads only the start of a document and is cached on it.
"""

from __future__ import annotations

import re
import warnings

from datatrove.data import Document

HEAD_CHARS = 4000

_CODE_LINE = re.compile(
    r"\s*(?:def |class |import |from [\w.]+ import |return\b|if .*:$|elif |else:|for .*:$|while .*:$|try:$"
    r"|except\b|finally:|with .*:$|raise |yield |@\w|#|//|/\*|\*/|[{}\])]+[;,]?$|pass$|break$|continue$"
    r"|[\w.\[\]'\"]+\s*(?:[-+*/%|&]|<<|>>)?=\s*\S|[\w.]+\(.*\)\s*;?$|\"\"\"|''')"
    r"|.*[;{]\s*$"
)
_LATEX_MARK = re.compile(r"\$|\\(?:frac|boxed|sqrt|cdot|times|pi|le|ge|sum|int|left|right|mathbf|dfrac)\b")
_ARITH_MARK = re.compile(r"[=+*/×÷]\s*\$?\d|answer is")
_TECH_MARKS = ("()", "_", " -", "::", "¶", ">>>", "$ ", "=", "[", "*")


def python_parses(text: str) -> bool:
    """Whether the text is a valid Python module. `compile` to a code object checks the same
    grammar as `ast.parse` in less time: it never builds the Python-level AST objects."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # invalid escape sequences in old sources are not errors
            compile(text, "<document>", "exec", dont_inherit=True)
        return True
    except (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError):
        return False


def parses_cached(doc: Document) -> bool:
    cached = doc.metadata.get("_parses")
    if cached is None:
        cached = doc.metadata["_parses"] = python_parses(doc.text)
    return cached


def guess_domain(doc: Document) -> str:
    cached = doc.metadata.get("_kind")
    if cached:
        return cached
    hint = doc.metadata.get("domain_hint")
    kind = hint if hint in ("math", "code") else _guess(doc)
    doc.metadata["_kind"] = kind
    return kind


def code_line_share(text: str, max_lines: int = 80) -> float:
    lines = [line for line in text[:HEAD_CHARS].split("\n", max_lines)[:max_lines] if line.strip()]
    return sum(1 for line in lines if _CODE_LINE.match(line)) / len(lines) if lines else 0.0


def _guess(doc: Document) -> str:
    head = doc.text[:HEAD_CHARS]
    words = max(head.count(" ") + head.count("\n"), 1)
    if len(_LATEX_MARK.findall(head)) / words >= 0.03:
        return "math"
    share = code_line_share(head)
    if share >= 0.5 or (share >= 0.2 and parses_cached(doc)):
        return "code"
    if len(_ARITH_MARK.findall(head)) / words >= 0.02:
        return "math"
    dots_in_names = head.count(".") - head.count(". ") - head.count(".\n")
    if (sum(head.count(mark) for mark in _TECH_MARKS) + dots_in_names) / words >= 0.02:
        return "technical"
    return "prose"
