"""App-like screens (title bar, buttons, text fields, scrolling lists) and instructions mapped to actions.

Actions are written `click(x, y)`, `type("text")` and `scroll(up|down)`, with coordinates of the
target element's centre as integers in [0, 1000] of the screen's width and height (InfiR-VL's
convention). A short thought names where the target is before the action, as agent traces do.
Layouts are coarse on purpose (a 2x3 grid of slots, or a four-row list) so that a small model can
learn to ground them; the held-out key is the whole layout, so held-out screens are new layouts.

Instructions name their target by its label ("Tap Save.": the model must read), by its colour ("Click
the red button.", when unique) or, for scrolling, leave it to the scroll bar; `ref` records which, and
the GUI task reports accuracy per kind of reference. Perception questions on the same screens (the
app's name, a button's label) serve the perception stage.
"""

from __future__ import annotations

import random

from infir.data.images.common import COLORS, QA, ImageGenerator, font, join_words, norm1000, scaled
from infir.data.images.words import APPS, BUTTONS, FIELDS, WORDS

KINDS = ("gui_describe", "gui_title", "gui_read", "click", "type", "scroll")
ACTION_KINDS = ("click", "type", "scroll")
# The screen is a 3 x 3 grid: the title bar is the top row, and each of the six slots below holds one
# element (or the two rows below hold list items and the scroll bar). With the tiny tower's 3 x 3
# patches every element is exactly one patch, so grounding an element is finding one patch.
TITLE_H = 1 / 3
ROWS, COLS = 2, 3
SLOT_NAMES = {
    (0, 0): "middle left",
    (0, 1): "middle",
    (0, 2): "middle right",
    (1, 0): "bottom left",
    (1, 1): "bottom",
    (1, 2): "bottom right",
}
LIST_ROWS = 2


def slot_box(row: int, col: int) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) of a form slot, as fractions of the screen."""
    h = (1 - TITLE_H) / ROWS
    return (
        col / COLS + 0.02,
        TITLE_H + row * h + 0.06,
        (col + 1) / COLS - 0.02,
        TITLE_H + (row + 1) * h - 0.06,
    )


def list_row_box(i: int) -> tuple[float, float, float, float]:
    h = (1 - TITLE_H) / LIST_ROWS
    return (0.02, TITLE_H + i * h + 0.04, 0.65, TITLE_H + (i + 1) * h - 0.04)


SCROLLBAR = (0.78, TITLE_H + 0.03, 0.92, 0.97)


def spec(rng: random.Random) -> dict:
    app = rng.choice(APPS)
    title_color = rng.choice(list(COLORS))
    if rng.random() < 0.6:
        slots = rng.sample([(r, c) for r in range(ROWS) for c in range(COLS)], rng.randint(2, 5))
        elements = []
        labels = rng.sample(BUTTONS, len(slots))
        fields = iter(rng.sample(FIELDS, len(slots)))
        for (r, c), label in zip(sorted(slots), labels):
            if rng.random() < 0.3:
                elements.append({"type": "field", "row": r, "col": c, "label": next(fields)})
            else:
                elements.append(
                    {"type": "button", "row": r, "col": c, "label": label, "color": rng.choice(list(COLORS))}
                )
        key = app + ":" + "|".join(f"{e['row']}{e['col']}{e['type'][0]}{e['label']}" for e in elements)
        screen = {"kind": "form", "elements": elements}
    else:
        items = rng.sample(WORDS, LIST_ROWS)
        thumb = rng.choice(("top", "bottom"))
        key = f"{app}:list:{','.join(items)}:{thumb}"
        screen = {"kind": "list", "items": items, "thumb": thumb}
    return {
        "key": key,
        "app": app,
        "title_color": title_color,
        **screen,
        "ask": rng.random(),
        "typed": rng.choice(WORDS),
    }


def _px(box, size):
    return [box[0] * size, box[1] * size, box[2] * size, box[3] * size]


def _centered_text(draw, box, text, fnt, fill):
    x0, y0, x1, y1 = box
    w = fnt.getlength(text)
    ascent, descent = fnt.getmetrics()
    draw.text(((x0 + x1 - w) / 2, (y0 + y1 - ascent - descent) / 2), text, font=fnt, fill=fill)


def render_screen(s: dict, size: int):
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (size, size), (248, 248, 248))
    draw = ImageDraw.Draw(img)
    draw.rectangle([0, 0, size, TITLE_H * size], fill=COLORS[s["title_color"]])
    label_font = font("DejaVuSans-Bold", scaled(size, 9))
    _centered_text(draw, [0, 0, size, TITLE_H * size], s["app"], label_font, (255, 255, 255))
    radius = scaled(size, 3)
    if s["kind"] == "form":
        for e in s["elements"]:
            box = _px(slot_box(e["row"], e["col"]), size)
            if e["type"] == "button":
                draw.rounded_rectangle(box, radius=radius, fill=COLORS[e["color"]])
                _centered_text(draw, box, e["label"], label_font, (255, 255, 255))
            else:
                draw.rectangle(box, fill=(255, 255, 255), outline=(120, 120, 120), width=scaled(size, 1))
                _centered_text(draw, box, e["label"], font("DejaVuSans", scaled(size, 8)), (140, 140, 140))
    else:
        item_font = font("DejaVuSans", scaled(size, 10))
        for i, item in enumerate(s["items"]):
            box = _px(list_row_box(i), size)
            draw.rectangle(box, fill=(255, 255, 255), outline=(200, 200, 200))
            _centered_text(draw, box, item, item_font, (20, 20, 20))
        bar = _px(SCROLLBAR, size)
        draw.rectangle(bar, fill=(225, 225, 225))
        third = (bar[3] - bar[1]) / 3
        top = bar[1] if s["thumb"] == "top" else bar[3] - third
        draw.rectangle([bar[0], top, bar[2], top + third], fill=(110, 110, 110))
    return img


def _click(box) -> str:
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return f"click({norm1000(cx, 1)}, {norm1000(cy, 1)})"


def _box1000(box) -> list[int]:
    return [norm1000(v, 1) for v in box]


def describe(s: dict) -> str:
    if s["kind"] == "list":
        return f"The {s['app']} app with a list of {join_words(s['items'])}."
    buttons = [e["label"] for e in s["elements"] if e["type"] == "button"]
    fields = [e["label"] for e in s["elements"] if e["type"] == "field"]
    parts = (
        [f"the buttons {join_words(buttons)}" if len(buttons) > 1 else f"the button {buttons[0]}"]
        if buttons
        else []
    )
    parts += [f"the {join_words(fields)} field{'s' if len(fields) > 1 else ''}"] if fields else []
    return f"The {s['app']} app with {' and '.join(parts)}."


def view(s: dict) -> str:
    """The screen as an accessibility tree would list it: app, then each element and where it is."""
    if s["kind"] == "list":
        rows = ", ".join(f"row {i + 1} {item}" for i, item in enumerate(s["items"]))
        return f"Screen: {s['app']} app; list: {rows}; the list is at the {s['thumb']}."
    parts = [
        f"{e['color'] + ' ' if e['type'] == 'button' else ''}{e['type']} {e['label']} at the "
        f"{SLOT_NAMES[(e['row'], e['col'])]}"
        for e in s["elements"]
    ]
    return f"Screen: {s['app']} app; " + "; ".join(parts) + "."


def questions(s: dict) -> list[QA]:
    rng = random.Random(s["ask"])
    qas = [
        QA("gui_describe", "Describe the screen.", describe(s)),
        QA("gui_title", "What app is this?", s["app"]),
    ]
    if s["kind"] == "form":
        buttons = [e for e in s["elements"] if e["type"] == "button"]
        fields = [e for e in s["elements"] if e["type"] == "field"]
        by_color = [e for e in buttons if sum(b["color"] == e["color"] for b in buttons) == 1]
        if by_color:
            e = rng.choice(by_color)
            qas.append(QA("gui_read", f"What does the {e['color']} button say?", e["label"]))
        for e in rng.sample(buttons, min(2, len(buttons))):
            box = slot_box(e["row"], e["col"])
            where = SLOT_NAMES[(e["row"], e["col"])]
            if e in by_color and rng.random() < 0.5:  # referred to by its colour, as people often do
                qas.append(
                    QA(
                        "click",
                        f"Click the {e['color']} button.",
                        f"The {e['color']} button is at the {where}. {_click(box)}",
                        {"action": "click", "box": _box1000(box), "ref": "color"},
                    )
                )
            else:
                instruction = rng.choice((f"Click the {e['label']} button.", f"Tap {e['label']}."))
                qas.append(
                    QA(
                        "click",
                        instruction,
                        f"{e['label']} is at the {where}. {_click(box)}",
                        {"action": "click", "box": _box1000(box), "ref": "label"},
                    )
                )
        if fields:
            e = rng.choice(fields)
            box = slot_box(e["row"], e["col"])
            where = SLOT_NAMES[(e["row"], e["col"])]
            if rng.random() < 0.5:
                qas.append(
                    QA(
                        "click",
                        f"Click the {e['label']} field.",
                        f"{e['label']} is at the {where}. {_click(box)}",
                        {"action": "click", "box": _box1000(box), "ref": "label"},
                    )
                )
            else:
                qas.append(
                    QA(
                        "type",
                        f'Type "{s["typed"]}" in the {e["label"]} field.',
                        f'The {e["label"]} field takes the text. type("{s["typed"]}")',
                        {"action": "type", "text": s["typed"], "ref": "text"},
                    )
                )
    else:
        i = rng.randrange(LIST_ROWS)
        box = list_row_box(i)
        qas.append(
            QA(
                "click",
                f"Open {s['items'][i]}.",
                f"{s['items'][i]} is row {i + 1} of the list. {_click(box)}",
                {"action": "click", "box": _box1000(box), "ref": "label"},
            )
        )
        direction = "down" if s["thumb"] == "top" else "up"
        qas.append(
            QA(
                "scroll",
                "Scroll to see more items.",
                f"The list is at the {s['thumb']}. scroll({direction})",
                {"action": "scroll", "direction": direction, "ref": "scrollbar"},
            )
        )
    return qas


GENERATOR = ImageGenerator("gui", KINDS, spec, questions, render_screen, view)
