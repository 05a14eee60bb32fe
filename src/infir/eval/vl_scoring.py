"""Scoring of VL answers: short-answer exact match, OCR character error rate, GUI actions.

GUI actions are `click(x, y)` with x, y in [0, 1000] of the screen, `type("text")` and
`scroll(up|down|left|right)`. An action is correct when its type matches the target's and its
argument does: the click point lies inside the target box (edges included), the typed text is
equal, the scroll direction is the same. A model may think before acting; its last action counts.
"""

from __future__ import annotations

import re
import string

_ACTION = re.compile(
    r"click\(\s*(?P<x>-?\d+(?:\.\d+)?)\s*,\s*(?P<y>-?\d+(?:\.\d+)?)\s*\)"
    r"|type\(\s*\"(?P<text>(?:[^\"\\]|\\.)*)\"\s*\)"
    r"|scroll\(\s*(?P<dir>up|down|left|right)\s*\)"
)
_PUNCT_EDGES = string.punctuation + " "


def normalize_answer(text: str) -> str:
    """Lower case, single spaces, no punctuation at the ends ("Red." == "red")."""
    return " ".join(text.lower().split()).strip(_PUNCT_EDGES)


def exact_match(prediction: str, gold: str) -> bool:
    return normalize_answer(prediction) == normalize_answer(gold)


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (insertions, deletions, substitutions), two rows of memory."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def character_error_rate(prediction: str, gold: str) -> float:
    """Edits to turn the prediction into the reference, per reference character (can exceed 1)."""
    prediction, gold = prediction.strip(), gold.strip()
    if not gold:
        return 0.0 if not prediction else 1.0
    return edit_distance(prediction, gold) / len(gold)


def parse_action(text: str) -> dict | None:
    """The last action written in `text`, or None when there is none."""
    matches = list(_ACTION.finditer(text))
    if not matches:
        return None
    m = matches[-1]
    if m.group("x") is not None:
        return {"action": "click", "x": float(m.group("x")), "y": float(m.group("y"))}
    if m.group("dir") is not None:
        return {"action": "scroll", "direction": m.group("dir")}
    return {"action": "type", "text": m.group("text").replace('\\"', '"')}


def point_in_box(x: float, y: float, box) -> bool:
    x0, y0, x1, y1 = box
    return x0 <= x <= x1 and y0 <= y <= y1


def action_correct(predicted: dict | None, target: dict) -> bool:
    """`target`: {"action": "click", "box": [x0, y0, x1, y1]} | {"action": "type", "text"} | {"action": "scroll", "direction"}."""
    if predicted is None or predicted["action"] != target["action"]:
        return False
    if target["action"] == "click":
        return point_in_box(predicted["x"], predicted["y"], target["box"])
    if target["action"] == "type":
        return predicted["text"] == target["text"]
    return predicted["direction"] == target["direction"]


def choice_letter(text: str, letters: str) -> str | None:
    """The option letter a multiple-choice answer picks: "(B)", "B.", "B", "The answer is B"."""
    text = text.strip()
    for pattern in (
        rf"\(([{letters}])\)",
        rf"(?:answer is|answer:)\s*\(?([{letters}])\b",
        rf"^([{letters}])(?:[.):]|$)",
    ):
        m = re.search(pattern, text, flags=re.IGNORECASE if "answer" in pattern else 0)
        if m:
            return m.group(1).upper()
    found = re.findall(rf"\b([{letters}])\b", text)
    return found[0] if len(set(found)) == 1 else None
