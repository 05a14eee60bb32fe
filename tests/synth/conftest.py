"""Fixtures for synthesis tests: small GSM8K-shaped seed files made here, a loopback teacher."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from infir.synth.config import DEFAULT_INSTRUCTIONS, SynthConfig
from infir.synth.loopback import LoopbackServer, ReferenceTeacher

MATH_INSTRUCTION = DEFAULT_INSTRUCTIONS["math"]


def word_problems(n: int, start: int = 0) -> list[dict]:
    """GSM8K-shaped records: a question and a worked answer ending in `#### N`."""
    out = []
    for i in range(start, start + n):
        a, b, c = 3 + i % 17, 5 + (7 * i) % 23, 2 + i % 5
        total = (a + b) * c
        out.append(
            {
                "question": f"Ana has {a} red boxes and {b} blue boxes (problem {i}). Each box holds {c} "
                f"pens. How many pens does she have?",
                "answer": f"She has {a}+{b}=<<{a}+{b}={a + b}>>{a + b} boxes.\n"
                f"They hold {a + b}*{c}=<<{a + b}*{c}={total}>>{total} pens.\n#### {total}",
            }
        )
    return out


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


@pytest.fixture
def seeds_file(tmp_path) -> Path:
    return write_jsonl(tmp_path / "seeds.jsonl", word_problems(40))


def http_config(seeds: Path, url: str, **over) -> SynthConfig:
    tree = {
        "seeds": [
            {
                "type": "jsonl",
                "path": str(seeds),
                "name": "wp",
                "answer_field": "answer",
                "answer_format": "gsm8k",
            }
        ],
        "teacher": {
            "type": "openai",
            "base_url": url,
            "model": "test-teacher",
            "concurrency": 4,
            "backoff_seconds": 0.01,
        },
        "generation": {"n": 4},
        "evolve": {"enabled": False},
        "decontam": {"enabled": False},
    }
    for key, value in over.items():
        tree[key] = {**tree.get(key, {}), **value} if isinstance(value, dict) else value
    return SynthConfig.model_validate(tree)


@pytest.fixture
def reference_teacher() -> ReferenceTeacher:
    return ReferenceTeacher.from_gsm8k(word_problems(40), wrong_fraction=0.3, strip=(MATH_INSTRUCTION,))


@pytest.fixture
def server(reference_teacher):
    with LoopbackServer(reference_teacher) as srv:
        yield srv
