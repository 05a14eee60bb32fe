"""Math with images: numbers read off a figure, then solved step by step ("The answer is N.").

Two figure families: a rectangle with its side lengths written on it (area or perimeter), and a
matplotlib bar chart (sum of two bars, or how much higher one is than another). The solution first
states what it reads off the image, then one arithmetic step per sentence, in the same format as
the text pipeline's worked solutions (`infir.data.reasoning`), so the same answer extraction scores it.
"""

from __future__ import annotations

import random

from infir.data.reasoning import ANSWER_PREFIX
from infir.data.images.charts import LABELS, draw_bars
from infir.data.images.common import COLORS, QA, ImageGenerator, font, scaled

KINDS = ("math",)


def spec(rng: random.Random) -> dict:
    if rng.random() < 0.5:
        w, h = rng.randint(2, 9), rng.randint(2, 9)
        ask = rng.choice(("area", "perimeter"))
        return {
            "key": f"rect:{w}x{h}:{ask}",
            "figure": "rect",
            "w": w,
            "h": h,
            "ask": ask,
            "color": rng.choice(list(COLORS)),
            "scale": rng.uniform(0.8, 1.0),
        }
    k = rng.randint(3, 4)
    values = [rng.randint(1, 9) for _ in range(k)]
    a, b = rng.sample(range(k), 2)
    ask = rng.choice(("sum", "difference"))
    if ask == "difference" and values[a] == values[b]:
        ask = "sum"
    if ask == "difference" and values[a] < values[b]:
        a, b = b, a
    return {
        "key": f"bars:{','.join(map(str, values))}:{ask}:{a}{b}",
        "figure": "bars",
        "values": values,
        "labels": list(LABELS[:k]),
        "a": a,
        "b": b,
        "ask": ask,
        "colors": [rng.choice(list(COLORS))] * k,
    }


def solve(s: dict) -> tuple[str, str, int]:
    """(question, step-by-step solution, answer)."""
    if s["figure"] == "rect":
        w, h = s["w"], s["h"]
        read = f"The width is {w} and the height is {h}."
        if s["ask"] == "area":
            answer = w * h
            solution = f"{read} The area is {w} * {h} = {answer}. {ANSWER_PREFIX} {answer}."
            return "What is the area of the rectangle?", solution, answer
        answer = 2 * (w + h)
        solution = (
            f"{read} {w} + {h} = {w + h}. The perimeter is 2 * {w + h} = {answer}. {ANSWER_PREFIX} {answer}."
        )
        return "What is the perimeter of the rectangle?", solution, answer
    la, lb = s["labels"][s["a"]], s["labels"][s["b"]]
    va, vb = s["values"][s["a"]], s["values"][s["b"]]
    read = f"{la} is {va} and {lb} is {vb}."
    if s["ask"] == "sum":
        answer = va + vb
        return (
            f"What is the sum of {la} and {lb}?",
            f"{read} {va} + {vb} = {answer}. {ANSWER_PREFIX} {answer}.",
            answer,
        )
    answer = va - vb
    return (
        f"How much higher is {la} than {lb}?",
        f"{read} {va} - {vb} = {answer}. {ANSWER_PREFIX} {answer}.",
        answer,
    )


def draw_rectangle(s: dict, size: int):
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (size, size), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    # Side lengths set the proportions (within limits), so the figure agrees with its labels.
    longest = max(s["w"], s["h"])
    span = 0.62 * s["scale"] * size
    w_px, h_px = span * s["w"] / longest, span * s["h"] / longest
    x0, y0 = (size - w_px) / 2 - 0.04 * size, (size - h_px) / 2 - 0.04 * size
    draw.rectangle(
        [x0, y0, x0 + w_px, y0 + h_px],
        fill=tuple(255 - (255 - c) * 35 // 100 for c in COLORS[s["color"]]),
        outline=(20, 20, 20),
        width=scaled(size, 2),
    )
    fnt = font("DejaVuSans-Bold", scaled(size, 14))
    ascent, descent = fnt.getmetrics()
    draw.text(
        (x0 + w_px / 2 - fnt.getlength(str(s["w"])) / 2, y0 + h_px + scaled(size, 2)),
        str(s["w"]),
        font=fnt,
        fill=(0, 0, 0),
    )
    draw.text(
        (x0 + w_px + scaled(size, 3), y0 + h_px / 2 - (ascent + descent) / 2),
        str(s["h"]),
        font=fnt,
        fill=(0, 0, 0),
    )
    return img


def view(s: dict) -> str:
    if s["figure"] == "rect":
        return f"A rectangle with width {s['w']} and height {s['h']}."
    return "Bar chart: " + ", ".join(f"{label} is {v}" for label, v in zip(s["labels"], s["values"])) + "."


def questions(s: dict) -> list[QA]:
    question, solution, answer = solve(s)
    return [QA("math", question, solution, {"final": str(answer)})]


def draw_figure(s: dict, size: int):
    return (
        draw_rectangle(s, size)
        if s["figure"] == "rect"
        else draw_bars(s["labels"], s["values"], s["colors"], size)
    )


GENERATOR = ImageGenerator("math", KINDS, spec, questions, draw_figure, view)
