"""The records synthesis passes between its steps: prompts (seeds and evolved ones) and their answers."""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass, field


@dataclass
class Item:
    """One prompt. Seeds have `seed_id == id`; an evolved item points to its seed and its parent."""

    id: str
    prompt: str
    domain: str
    source: str
    seed_id: str
    parent_id: str | None = None
    evolution: list[str] = field(default_factory=list)  # strategies applied, oldest first
    reference: str | None = None  # the final answer, when the seed has one
    task: str | None = None  # registry task that verifies this item's answers
    doc: dict | None = None  # the task's document (the seed record)
    label: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Candidate:
    """One teacher answer to an item and what verification made of it."""

    item_id: str
    index: int
    text: str
    finish_reason: str = "stop"
    error: str | None = None
    verified: bool = False
    reason: str = ""  # "verified", "verified_majority" or why it was rejected
    method: str = ""
    answer: str | None = None  # the final answer read from the text
    score: float | None = None  # scorer verification or quality judge


def stable_int(*parts: object, bits: int = 31) -> int:
    """A deterministic integer from parts (Python's hash() is salted per process)."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") & ((1 << bits) - 1)


def stable_fraction(*parts: object) -> float:
    return stable_int(*parts, bits=53) / float(1 << 53)


_FIELD = re.compile(r"\{(\w+)\}")


def fill(template: str, **values: str) -> str:
    """`template` with {name} fields replaced in one pass: other braces (LaTeX's \\boxed{}) and braces
    inside the values are left alone, unlike str.format."""
    return _FIELD.sub(lambda m: values.get(m.group(1), m.group(0)), template)
