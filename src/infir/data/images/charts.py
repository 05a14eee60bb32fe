"""Bar charts drawn with matplotlib: read a value, find the highest or lowest bar, compare two bars.

Values are integers 1-9 on a 0-10 axis with grid lines every 2, so every value is readable at small
sizes. The held-out key is the (labels, values) table. The axes are drawn once per (size, number of
bars); each chart draws only its bars over them.
"""

from __future__ import annotations

import random
from functools import lru_cache

from infir.data.images.common import COLORS, QA, ImageGenerator, join_words

LABELS = ("A", "B", "C", "D")
KINDS = ("chart_table", "chart_value", "chart_max", "chart_min", "chart_compare")


def spec(rng: random.Random) -> dict:
    k = rng.randint(3, 4)
    values = [rng.randint(1, 9) for _ in range(k)]
    palette = rng.sample(list(COLORS), k) if rng.random() < 0.5 else [rng.choice(list(COLORS))] * k
    return {
        "key": "bars:" + ",".join(map(str, values)),
        "labels": list(LABELS[:k]),
        "values": values,
        "colors": palette,
        "ask": rng.random(),
    }


@lru_cache(maxsize=8)
def _template(size: int, k: int):
    """Axes with `k` bars drawn once without the bars; a chart restores that background and draws
    only its bars over it (blitting: far cheaper than drawing a figure, and the same pixels)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    dpi = 100
    fig = Figure(figsize=(size / dpi, size / dpi), dpi=dpi)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_axes((0.2, 0.16, 0.76, 0.8))
    bars = list(ax.bar(list(LABELS[:k]), [1] * k, width=0.6, zorder=2))
    ax.set_ylim(0, 10)
    ax.set_yticks(range(0, 11, 2))
    ax.grid(axis="y", linewidth=0.5, zorder=0)
    ax.tick_params(labelsize=max(4.0, 7.0 * size / 96), length=2, pad=1)
    for bar in bars:
        bar.set_visible(False)
    canvas.draw()
    background = canvas.copy_from_bbox(fig.bbox)
    for bar in bars:
        bar.set_visible(True)
    return canvas, ax, bars, background


def draw_bars(labels: list[str], values: list[int], colors: list[str], size: int):
    """A PIL image of the bar chart (bars labelled A, B, ... in order)."""
    from PIL import Image

    if list(labels) != list(LABELS[: len(labels)]):
        raise ValueError(f"bar labels must be {list(LABELS[: len(labels)])}, got {labels}")
    canvas, ax, bars, background = _template(size, len(values))
    canvas.restore_region(background)
    for bar, value, name in zip(bars, values, colors):
        bar.set_height(value)
        bar.set_color(tuple(c / 255 for c in COLORS[name]))
        ax.draw_artist(bar)
    return Image.frombuffer("RGBA", canvas.get_width_height(), canvas.buffer_rgba()).convert("RGB")


def view(s: dict) -> str:
    return "Bar chart: " + join_words([f"{label} is {v}" for label, v in zip(s["labels"], s["values"])]) + "."


def questions(s: dict) -> list[QA]:
    labels, values, rng = s["labels"], s["values"], random.Random(s["ask"])
    table = join_words([f"{label} is {v}" for label, v in zip(labels, values)])
    qas = [QA("chart_table", "Read the values of the bars.", table[0].upper() + table[1:] + ".")]
    i = rng.randrange(len(labels))
    qas.append(QA("chart_value", f"What is the value of {labels[i]}?", str(values[i])))
    if values.count(max(values)) == 1:
        qas.append(QA("chart_max", "Which bar is the highest?", labels[values.index(max(values))]))
    if values.count(min(values)) == 1:
        qas.append(QA("chart_min", "Which bar is the lowest?", labels[values.index(min(values))]))
    pairs = [
        (a, b) for a in range(len(labels)) for b in range(len(labels)) if a != b and values[a] != values[b]
    ]
    if pairs:
        a, b = rng.choice(pairs)
        qas.append(
            QA(
                "chart_compare",
                f"Is {labels[a]} higher than {labels[b]}?",
                "yes" if values[a] > values[b] else "no",
            )
        )
    return qas


def draw_chart(s: dict, size: int):
    return draw_bars(s["labels"], s["values"], s["colors"], size)


GENERATOR = ImageGenerator("charts", KINDS, spec, questions, draw_chart, view)
