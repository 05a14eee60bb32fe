"""Each step's decisions on small handmade inputs."""

from __future__ import annotations

import numpy as np
import pytest
from datatrove.data import Document

from infir.curate.config import DecontamConfig, DedupConfig, FilterConfig, MixtureSpec
from infir.curate.filters.decontam import DecontamIndex, build_index, contamination, save_index
from infir.curate.dedup.minhash import MinHasher, exact_hash, find_duplicates
from infir.curate.filters.domain_guess import guess_domain
from infir.curate.filters.heuristic import HeuristicFilter
from infir.curate.filters.rules import trim_trailing_colon
from infir.curate.dedup.hashing import word_hashes
from infir.curate.mixture import sample_rates

PROSE = (
    "The committee met on Tuesday to discuss the budget for the coming year.\n"
    "Members agreed that the library needs new shelves, and that the park should have more benches.\n"
    "A local baker offered to donate bread for the summer festival, which drew applause from the room.\n"
    "The treasurer warned that heating costs had risen sharply since the winter began.\n"
    "After a long debate, the group voted to postpone the decision on the swimming pool until spring.\n"
    "Several residents asked whether the bus schedule could be changed to serve the new school.\n"
    "The chair thanked everyone for coming and reminded them that the next meeting is in March.\n"
)
CODE = '''import os


def walk(root):
    """Yield every file below root."""
    for base, dirs, files in os.walk(root):
        for name in files:
            yield os.path.join(base, name)


class Counter:
    def __init__(self):
        self.count = 0

    def add(self, n=1):
        self.count += n
        return self.count
'''
MATH = (
    "Compute $\\frac{3}{4} + \\frac{1}{8}$.\n\nWe have $\\frac{6}{8} + \\frac{1}{8} = \\boxed{\\frac{7}{8}}$."
)


def _judge(text: str, **meta) -> bool | tuple:
    step = HeuristicFilter(FilterConfig())
    step.setup(0, 1)
    return step.filter(Document(text=text, id="x", metadata=dict(meta)))


def test_domain_guess():
    assert guess_domain(Document(text=CODE, id="c")) == "code"
    assert guess_domain(Document(text=MATH, id="m")) == "math"
    assert guess_domain(Document(text=PROSE, id="p")) == "prose"


def test_heuristics_keep_clean_code_math_prose():
    assert _judge(CODE) is True
    assert _judge(MATH) is True  # short, few stop words: web rules would drop it
    assert _judge(PROSE) is True


def test_heuristics_drop_junk():
    assert _judge("buy cheap buy cheap click " * 80)[0] is False
    assert _judge("\n".join(["Skip to content"] * 30 + ["Privacy Policy"] * 30))[0] is False
    assert _judge("#0^>1{4$=%*#-^4=5|]&8>2!$" * 40)[0] is False
    assert _judge("provides Jason CAPITAL translationproject Called")[0] is False
    assert _judge("def broken(:\n    return ((\n  x = ]\n", domain_hint="code") == (
        False,
        "code_does_not_parse",
    )


def test_colon_rule_trims_dangling_lines():
    assert trim_trailing_colon("Solve for x.\nThe steps are:") == "Solve for x."
    doc_text = MATH + "\n\nHere is another example:"
    step = HeuristicFilter(FilterConfig())
    step.setup(0, 1)
    doc = Document(text=doc_text, id="m")
    assert step.filter(doc) is True and doc.text.rstrip().endswith("$.") and doc.metadata["colon_trimmed"]


def test_dedup_exact_near_and_distinct():
    cfg = DedupConfig()
    base = " ".join(f"word{i} value{i % 7} thing{i % 13}" for i in range(200))
    near = base.replace("word5 ", "changed ").replace("word50 ", "other ") + " Home About Contact"
    other = " ".join(f"alpha{i} beta{i % 5}" for i in range(300))
    texts = [base, near, base, other]
    hasher = MinHasher(cfg)
    exact = np.array([exact_hash(t) for t in texts], dtype=np.uint64)
    sigs = np.stack([hasher.signature(t) for t in texts])
    removed = find_duplicates(exact, sigs, cfg)
    assert removed == {1: (0, "near_duplicate"), 2: (0, "exact_duplicate")}


def test_decontam_catches_quoted_question_not_shared_phrase(tmp_path):
    question = (
        "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in "
        "May. How many clips did Natalia sell altogether in April and May?"
    )
    texts = {"fake": [question, "Evaluate $\\log_2 64$."]}
    cfg = DecontamConfig(tasks=["fake"])
    index, report = build_index(cfg, lambda task, path: iter(texts[task]), ["fake"])
    save_index(index, tmp_path / "index.npz")
    idx = DecontamIndex(str(tmp_path / "index.npz"))
    assert report["fake"]["texts"] == 2
    quoted = f"Forum post. Homework help: {question} Thanks in advance!"
    assert "fake" in contamination(idx, word_hashes(quoted), cfg)
    assert "fake" in contamination(idx, word_hashes("Homework: Evaluate $\\log_2 64$. please"), cfg)
    phrase = "She sold half as many clips in May as in June to her neighbours, which was a lot."
    assert contamination(idx, word_hashes(phrase), cfg) == {}


def test_sample_rates_meet_weights():
    spec = MixtureSpec(weights={"web": 0.5, "math": 0.5})
    mix = sample_rates(spec, {"web": 300, "math": 100}, {"web": 3, "math": 1})
    seen = {d: v["tokens"] * v["sample_rate"] for d, v in mix["domains"].items()}
    assert abs(seen["web"] - seen["math"]) < 1e-3 and abs(sum(seen.values()) - 400) < 1e-3


def test_decontam_fails_loudly_naming_the_task(tmp_path):
    from infir.curate.filters.decontam import DecontamError

    missing = DecontamConfig(tasks=["gsm8k"], data_paths={"gsm8k": str(tmp_path / "no-such-folder")})
    with pytest.raises(DecontamError, match="'gsm8k'.*no-such-folder"):
        build_index(missing)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty/test.jsonl").write_text("")
    with pytest.raises(DecontamError, match="'gsm8k' has no texts"):
        build_index(DecontamConfig(tasks=["gsm8k"], data_paths={"gsm8k": str(tmp_path / "empty")}))
    with pytest.raises(DecontamError, match="'nonexistent_task'"):
        build_index(DecontamConfig(tasks=["nonexistent_task"]))
