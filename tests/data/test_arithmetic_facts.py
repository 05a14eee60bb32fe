"""The arithmetic-facts builtin corpus: steps of training problems only, each fact right, kept by curation."""

import re
from fractions import Fraction

from infir.curate.config import FilterConfig
from infir.curate.filters.rules import junk_reason
from infir.data import reasoning
from infir.data.builtin import arithmetic_facts

ITEM = re.compile(r"Question: What is (.+)\?\nAnswer: (.+) = (-?\d+)\. The answer is (-?\d+)\.")


def test_every_drill_is_a_right_step_of_a_training_problem():
    docs = list(arithmetic_facts(families=["basic_arithmetic"], problems_per_family=200, repeats=2,
                                 facts_per_doc=16, seed=3))
    assert docs == list(arithmetic_facts(families=["basic_arithmetic"], problems_per_family=200, repeats=2,
                                         facts_per_doc=16, seed=3))  # deterministic
    items = [m.groups() for d in docs for m in ITEM.finditer(d["text"])]
    assert all(d["text"].count("Question:") <= 16 and d["metadata"]["domain"] == "math" for d in docs)
    steps = {f"{a} = {c}" for p in reasoning.generate("basic_arithmetic", 200, seed=3, split="train")
             for a, c in re.findall(r"(-?\d+ [-+*/] -?\d+) = (-?\d+)\.", p.solution)}
    assert len(items) == 2 * len(steps)  # every fact once per repeat
    for question, left, result, answer in items:
        assert question == left and result == answer and f"{left} = {result}" in steps
        a, op, b = left.split(" ")
        value = {"+": Fraction(a) + Fraction(b), "-": Fraction(a) - Fraction(b), "*": Fraction(a) * Fraction(b),
                 "/": Fraction(a) / Fraction(b) if b != "0" else None}[op]
        assert value == Fraction(result), left


def test_drill_sheets_pass_the_math_domains_heuristics():
    rules = FilterConfig().math
    docs = list(arithmetic_facts(problems_per_family=100))
    assert docs and all(junk_reason(d["text"], rules) is None for d in docs)
