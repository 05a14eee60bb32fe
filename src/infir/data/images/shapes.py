"""Scenes of coloured shapes: captions and counting, colour, shape and position questions.

One to four shapes sit in distinct cells of a 3x3 grid (jittered inside the cell). The held-out
key is the set of (cell, shape, colour): a held-out scene is an arrangement training never shows.
"""

from __future__ import annotations

import random

from infir.data.images.common import COLORS, QA, ImageGenerator, join_words, scaled

SHAPES = ("circle", "square", "triangle")
CELL_NAMES = (
    "top left",
    "top",
    "top right",
    "left",
    "center",
    "right",
    "bottom left",
    "bottom",
    "bottom right",
)
KINDS = ("caption", "count", "count_shape", "color", "shape", "position")


def spec(rng: random.Random) -> dict:
    n = rng.randint(1, 4)
    cells = sorted(rng.sample(range(9), n))
    objects = [
        {
            "cell": c,
            "shape": rng.choice(SHAPES),
            "color": rng.choice(list(COLORS)),
            "jx": rng.uniform(-0.15, 0.15),
            "jy": rng.uniform(-0.15, 0.15),
            "scale": rng.uniform(0.75, 1.0),
        }
        for c in cells
    ]
    key = "|".join(f"{o['cell']}{o['shape'][0]}{o['color']}" for o in objects)
    return {
        "key": key,
        "objects": objects,
        "bg": rng.choice([(255, 255, 255), (245, 240, 230), (230, 236, 245)]),
        "ask": rng.random(),
    }


def _draw(draw, o: dict, size: int) -> None:
    cell = size / 3
    cx = (o["cell"] % 3 + 0.5 + o["jx"]) * cell
    cy = (o["cell"] // 3 + 0.5 + o["jy"]) * cell
    r = cell * 0.36 * o["scale"]
    fill, outline = COLORS[o["color"]], (30, 30, 30)
    width = scaled(size, 1)
    if o["shape"] == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill, outline=outline, width=width)
    elif o["shape"] == "square":
        draw.rectangle([cx - r, cy - r, cx + r, cy + r], fill=fill, outline=outline, width=width)
    else:
        draw.polygon(
            [(cx, cy - r), (cx + r, cy + r * 0.8), (cx - r, cy + r * 0.8)], fill=fill, outline=outline
        )


def article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def caption(objects: list[dict]) -> str:
    parts = [
        f"{article(o['color'])} {o['color']} {o['shape']}" for o in objects
    ]  # cells are in reading order
    text = join_words(parts)
    return text[0].upper() + text[1:] + "."


def view(s: dict) -> str:
    parts = [
        f"{article(o['color'])} {o['color']} {o['shape']} at the {CELL_NAMES[o['cell']]}"
        for o in s["objects"]
    ]
    return "Shapes: " + join_words(parts) + "."


def questions(s: dict) -> list[QA]:
    objects, rng = s["objects"], random.Random(s["ask"])
    qas = [QA("caption", "Describe the image.", caption(objects))]
    n = len(objects)
    qas.append(QA("count", "How many shapes are there?", str(n)))
    target = rng.choice(SHAPES)
    qas.append(
        QA("count_shape", f"How many {target}s are there?", str(sum(o["shape"] == target for o in objects)))
    )
    unique_shapes = [o for o in objects if sum(p["shape"] == o["shape"] for p in objects) == 1]
    if unique_shapes:
        o = rng.choice(unique_shapes)
        qas.append(QA("color", f"What color is the {o['shape']}?", o["color"]))
    unique_colors = [o for o in objects if sum(p["color"] == o["color"] for p in objects) == 1]
    if unique_colors:
        o = rng.choice(unique_colors)
        qas.append(QA("shape", f"What shape is {o['color']}?", o["shape"]))
    unique = [
        o for o in objects if sum((p["color"], p["shape"]) == (o["color"], o["shape"]) for p in objects) == 1
    ]
    if unique:
        o = rng.choice(unique)
        qas.append(QA("position", f"Where is the {o['color']} {o['shape']}?", CELL_NAMES[o["cell"]]))
    return qas


def draw_scene(s: dict, size: int):
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (size, size), tuple(s["bg"]))
    draw = ImageDraw.Draw(img)
    for o in s["objects"]:
        _draw(draw, o, size)
    return img


GENERATOR = ImageGenerator("shapes", KINDS, spec, questions, draw_scene, view)
