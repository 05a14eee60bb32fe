"""Rendered text: words and short sentences in varied fonts, sizes, colours and rotations; the answer
is the text itself (OCR).

The held-out key is (text, font): a held-out image shows a text in a font training never showed it
in, at a fresh size, colour, rotation and position (with `renderings` > 1: see TextStyle).

`TextStyle` sets how hard the images are. Its defaults are the full task (52 words, up to three per
text, 11 fonts, 13-22 px, +-15 degrees, anywhere on the canvas); a curriculum for a tower that must
learn to read in CPU minutes may ask for a few words, one per image, larger type in fewer fonts,
milder rotations and text near the centre.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from infir.data.images.common import FONT_NAMES, QA, ImageGenerator, contrast_pair, font, scaled
from infir.data.images.words import OCR_WORDS

KINDS = ("ocr",)
QUESTIONS = ("What does the text say?", "Read the text in the image.", "What is written here?")


WORD_WEIGHTS = (7, 2, 1)  # texts of one, two, three words


@dataclass(frozen=True)
class TextStyle:
    vocabulary: int = len(OCR_WORDS)  # draw words from the first N of OCR_WORDS
    max_words: int = 3  # words per text: 1 to max_words (weights 7:2:1)
    px: tuple[float, float] = (13.0, 22.0)  # font size range, in pixels at 96 px (scaled to the canvas)
    max_angle: float = 15.0  # rotation drawn from [-max_angle, max_angle] degrees
    fonts: tuple[str, ...] = FONT_NAMES
    # How far from the centre the text may sit, as a share of the free space (0: always centred).
    position_jitter: float = 1.0
    # Distinct renderings per (text, font): 1 keeps the held-out key (text, font). More make the key
    # (text, font, rendering), so a small vocabulary still yields thousands of distinct images; held-out
    # images are then renderings (colours, size, place, rotation) training never showed, of known words.
    renderings: int = 1

    def __post_init__(self):
        if not 2 <= self.vocabulary <= len(OCR_WORDS):
            raise ValueError(f"text vocabulary must be 2..{len(OCR_WORDS)} words, got {self.vocabulary}")
        if not 1 <= self.max_words <= len(WORD_WEIGHTS):
            raise ValueError(f"text max_words must be 1..{len(WORD_WEIGHTS)}, got {self.max_words}")
        px = tuple(self.px)
        if len(px) != 2 or not 4 <= px[0] <= px[1]:
            raise ValueError(f"text px must be [low, high] with 4 <= low <= high, got {list(self.px)}")
        if self.renderings < 1:
            raise ValueError(f"text renderings must be >= 1, got {self.renderings}")
        if not 0 <= self.position_jitter <= 1:
            raise ValueError(f"text position_jitter must be 0..1, got {self.position_jitter}")
        if not 0 <= self.max_angle <= 90:
            raise ValueError(f"text max_angle must be 0..90 degrees, got {self.max_angle}")
        unknown = sorted(set(self.fonts) - set(FONT_NAMES))
        if unknown or not self.fonts:
            raise ValueError(f"text fonts: unknown {unknown} or none given; known: {list(FONT_NAMES)}")
        object.__setattr__(self, "px", px)
        object.__setattr__(self, "fonts", tuple(self.fonts))


def spec(rng: random.Random, style: TextStyle = TextStyle()) -> dict:
    n_words = rng.choices(range(1, style.max_words + 1), weights=WORD_WEIGHTS[: style.max_words])[0]
    words = OCR_WORDS[: style.vocabulary]
    text = " ".join(rng.choice(words) for _ in range(n_words))
    name = rng.choice(style.fonts)
    bg, fg = contrast_pair(rng)
    key = f"{text}|{name}" if style.renderings == 1 else f"{text}|{name}|{rng.randrange(style.renderings)}"
    return {
        "key": key,
        "text": text,
        "font": name,
        "px": rng.uniform(*style.px),
        "angle": rng.uniform(-style.max_angle, style.max_angle),
        "bg": bg,
        "fg": fg,
        "x": 0.5 + style.position_jitter * (rng.random() - 0.5),
        "y": 0.5 + style.position_jitter * (rng.random() - 0.5),
        "question": rng.choice(QUESTIONS),
    }


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


GENERATOR = ImageGenerator("text", KINDS, spec, questions, render_text, view, options=TextStyle)
