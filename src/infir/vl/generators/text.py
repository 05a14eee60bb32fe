"""Rendered text: words and short sentences in varied fonts, sizes, colours and rotations; the answer
is the text itself (OCR).

The held-out key is (text, font): a held-out image shows a text in a font training never showed it
in, at a fresh size, colour, rotation and position.
"""

from __future__ import annotations

import random

from infir.vl.generators.common import FONT_NAMES, QA, Generator, contrast_pair, font, scaled
from infir.vl.generators.words import OCR_WORDS

KINDS = ("ocr",)
QUESTIONS = ("What does the text say?", "Read the text in the image.", "What is written here?")


def spec(rng: random.Random) -> dict:
    n_words = rng.choices((1, 2, 3), weights=(7, 2, 1))[0]
    text = " ".join(rng.choice(OCR_WORDS) for _ in range(n_words))
    name = rng.choice(FONT_NAMES)
    bg, fg = contrast_pair(rng)
    return {"key": f"{text}|{name}", "text": text, "font": name, "px": rng.uniform(13, 22),
            "angle": rng.uniform(-15, 15), "bg": bg, "fg": fg, "x": rng.random(), "y": rng.random(),
            "question": rng.choice(QUESTIONS)}


def layout_lines(text: str, fnt, width: int) -> list[str]:
    """Greedy word wrap to `width` pixels (a sentence may take two or three lines)."""
    lines: list[str] = []
    for word in text.split():
        trial = f"{lines[-1]} {word}" if lines else word
        if lines and fnt.getlength(trial) <= width:
            lines[-1] = trial
        else:
            lines.append(word)
    return lines


def render_text(s: dict, size: int):
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (size, size), tuple(s["bg"]))
    px = scaled(size, s["px"])
    while True:  # shrink until the rotated block fits the canvas
        fnt = font(s["font"], px)
        lines = layout_lines(s["text"], fnt, int(size * 0.85))
        ascent, descent = fnt.getmetrics()
        line_h = ascent + descent
        w = int(max(fnt.getlength(line) for line in lines)) + 4
        h = line_h * len(lines) + 4
        layer = Image.new("RGBA", (w, h), (0, 0, 0, 0))
        draw = ImageDraw.Draw(layer)
        for i, line in enumerate(lines):
            draw.text((2, 2 + i * line_h), line, font=fnt, fill=tuple(s["fg"]) + (255,))
        layer = layer.rotate(s["angle"], expand=True, resample=Image.BICUBIC)
        if (layer.width <= size and layer.height <= size) or px <= 6:
            break
        px -= 1
    x = int(s["x"] * max(0, size - layer.width))
    y = int(s["y"] * max(0, size - layer.height))
    img.paste(layer, (x, y), layer)
    return img


def view(s: dict) -> str:
    # Quoted, so the words tokenize as the answer does (`Text: home` would give ` home`, not `home`): the
    # language warm-up then teaches a plain token copy, the skill that forms first in a small LM.
    return f'Text: "{s["text"]}"'


def questions(s: dict) -> list[QA]:
    return [QA("ocr", s["question"], s["text"])]


GENERATOR = Generator("text", KINDS, spec, questions, render_text, view)
