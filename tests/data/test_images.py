import numpy as np
import pytest

from infir.data.images import GENERATORS, generate, is_heldout
from infir.data.images.charts import draw_bars
from infir.data.images.common import COLORS
from infir.data.images.gui import slot_box
from infir.data.images.text import render_text


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_generation_is_deterministic_sized_and_split_by_content(name):
    a = generate(name, 12, seed=3, split="train", size=64)
    b = generate(name, 12, seed=3, split="train", size=64)
    held = generate(name, 12, seed=3, split="heldout", size=64)
    assert [g.key for g in a] == [g.key for g in b]
    assert all(np.array_equal(np.asarray(x.image), np.asarray(y.image)) for x, y in zip(a, b))
    assert all(g.image.size == (64, 64) and g.image.mode == "RGB" for g in a + held)
    assert len({g.key for g in a}) == 12  # distinct content
    assert not {g.key for g in a} & {g.key for g in held}
    assert all(not is_heldout(g.key, 0.2) for g in a) and all(is_heldout(g.key, 0.2) for g in held)
    kinds = {qa.kind for g in a for qa in g.qas}
    assert kinds <= set(GENERATORS[name].kinds) and kinds
    assert all(qa.question and qa.answer for g in a for qa in g.qas)


def test_split_does_not_depend_on_seed():
    keys = {g.key for seed in (0, 1) for g in generate("shapes", 30, seed, "heldout", draw=False)}
    assert all(is_heldout(k, 0.2) for k in keys)


def test_draw_false_skips_pixels_but_keeps_questions():
    drawn = generate("gui", 5, 0)
    blind = generate("gui", 5, 0, draw=False)
    assert all(g.image is None for g in blind)
    assert [[q.answer for q in g.qas] for g in drawn] == [[q.answer for q in g.qas] for g in blind]


def test_shape_answers_follow_the_scene():
    for g in generate("shapes", 40, 0, draw=False):
        objects = g.spec["objects"]
        answers = {qa.kind: qa for qa in g.qas}
        assert answers["count"].answer == str(len(objects))
        target = answers["count_shape"].question.split()[2][:-1]  # "How many circles are there?"
        assert answers["count_shape"].answer == str(sum(o["shape"] == target for o in objects))
        if "color" in answers:
            shape = answers["color"].question.rstrip("?").split()[-1]
            assert [o["color"] for o in objects if o["shape"] == shape] == [answers["color"].answer]
        assert (
            answers["caption"].answer.count(",") + answers["caption"].answer.count(" and ")
            == len(objects) - 1
        )


def test_chart_questions_match_the_values_and_bars_are_drawn_to_height():
    for g in generate("charts", 30, 0, draw=False):
        values, labels = g.spec["values"], g.spec["labels"]
        for qa in g.qas:
            if qa.kind == "chart_value":
                assert qa.answer == str(values[labels.index(qa.question.split()[-1].rstrip("?"))])
            if qa.kind == "chart_max":
                assert values[labels.index(qa.answer)] == max(values)
            if qa.kind == "chart_compare":
                a, b = qa.question.split()[1], qa.question.split()[4].rstrip("?")
                assert (qa.answer == "yes") == (values[labels.index(a)] > values[labels.index(b)])
    # Bar heights are proportional to values: count red pixels in each bar's column.
    img = np.asarray(draw_bars(["A", "B", "C"], [2, 8, 4], ["red", "red", "red"], 128)).astype(int)
    red = np.abs(img - np.array(COLORS["red"])).sum(-1) < 60
    columns = red.sum(0)
    heights = [int(columns[int(128 * x)]) for x in (0.2 + 0.76 * (0.5 + i) / 3 for i in range(3))]
    assert heights[1] > heights[2] > heights[0] > 0
    assert heights[1] / heights[0] == pytest.approx(4, rel=0.2)


def test_text_is_drawn_inside_the_canvas_in_its_colour():
    for g in generate("text", 20, 0, size=96):
        s = g.spec
        img = np.asarray(render_text(s, 96)).astype(int)
        to_fg = np.abs(img - np.array(s["fg"])).sum(-1)
        to_bg = np.abs(img - np.array(s["bg"])).sum(-1)
        ink = (to_fg < to_bg).sum()  # anti-aliased and rotated: count pixels nearer the text colour
        assert ink > 8 * len(s["text"].replace(" ", "")), f"text {s['text']!r} left only {ink} pixels"
        assert g.qas[0].answer == s["text"]


def test_gui_clicks_point_at_the_centre_of_their_target():
    from infir.eval.vl_scoring import action_correct, parse_action

    seen, refs = set(), set()
    for g in generate("gui", 80, 0, draw=False):
        for qa in g.qas:
            if qa.kind in ("click", "type", "scroll"):
                seen.add(qa.kind)
                refs.add(qa.meta["ref"])
                assert action_correct(parse_action(qa.answer), qa.meta), qa
            if qa.kind == "click" and g.spec["kind"] == "form":
                words = qa.question.rstrip(".").split()
                if qa.meta["ref"] == "color":  # "Click the red button."
                    element = next(e for e in g.spec["elements"] if e.get("color") == words[2])
                else:  # "Click the Save button." / "Tap Save." / "Click the Name field."
                    element = next(e for e in g.spec["elements"] if e["label"] in words)
                x0, y0, x1, y1 = slot_box(element["row"], element["col"])
                assert qa.meta["box"] == [round(v * 1000) for v in (x0, y0, x1, y1)]
    assert seen == {"click", "type", "scroll"} and refs == {"label", "color", "text", "scrollbar"}


def test_views_say_what_the_questions_need():
    for g in generate("gui", 30, 0, draw=False):
        for qa in g.qas:
            if qa.kind == "click" and qa.meta["ref"] == "label":
                target = qa.answer.split(" is ")[0]
                assert target in g.view
    for g in generate("text", 10, 0, draw=False):
        assert g.view.endswith(f'"{g.qas[0].answer}"')  # quoted: the answer's words tokenize the same
    for g in generate("charts", 10, 0, draw=False):
        assert all(f"{label} is {v}" in g.view for label, v in zip(g.spec["labels"], g.spec["values"]))


def test_math_solutions_end_in_the_right_answer():
    from infir.data.reasoning import extract_answer

    for g in generate("math", 40, 0, draw=False):
        s, qa = g.spec, g.qas[0]
        if s["figure"] == "rect":
            expected = s["w"] * s["h"] if s["ask"] == "area" else 2 * (s["w"] + s["h"])
        else:
            va, vb = s["values"][s["a"]], s["values"][s["b"]]
            expected = va + vb if s["ask"] == "sum" else va - vb
        assert extract_answer(qa.answer) == qa.meta["final"] == str(expected)


def test_asking_for_more_distinct_images_than_exist_fails_clearly():
    # Charts have 9^3 + 9^4 distinct value tables; 1% of them cannot give 5000 held-out charts.
    with pytest.raises(ValueError, match="distinct"):
        generate("charts", 5000, 0, split="heldout", heldout_fraction=0.01, draw=False)


def test_text_style_sets_vocabulary_words_size_and_rotation():
    from infir.data.images.words import OCR_WORDS

    style = {"vocabulary": 10, "max_words": 1, "px": [24, 28], "max_angle": 4, "fonts": ["DejaVuSans-Bold"]}
    keys = [f"{w}|DejaVuSans-Bold" for w in OCR_WORDS[:10]]  # one word per image: ten contents in all
    n_train = sum(not is_heldout(k, 0.2) for k in keys)
    assert 0 < n_train < 10
    images = generate("text", n_train, 0, options=style, size=96)
    assert sorted(g.key for g in images) == sorted(k for k in keys if not is_heldout(k, 0.2))
    assert all(24 <= g.spec["px"] <= 28 and abs(g.spec["angle"]) <= 4 for g in images)
    with pytest.raises(ValueError, match=f"found only {n_train} distinct"):
        generate("text", n_train + 1, 0, options=style, draw=False)
    # The defaults stay the full task: several words per text, small type, all fonts.
    default = generate("text", 60, 0, draw=False)
    assert max(len(g.spec["text"].split()) for g in default) == 3 and min(g.spec["px"] for g in default) < 16
    assert len({g.spec["font"] for g in default}) > 5 and max(abs(g.spec["angle"]) for g in default) > 10


def test_text_renderings_multiply_distinct_images_and_centring_holds_the_text_still():
    style = {"vocabulary": 2, "max_words": 1, "fonts": ["DejaVuSans"], "position_jitter": 0, "renderings": 10}
    images = generate("text", 12, 0, options=style, size=96)  # 2 words x 1 font, yet 12 distinct images
    assert len({g.key for g in images}) == 12 and {g.spec["text"] for g in images} == {"acid", "baby"}
    assert all(g.spec["x"] == g.spec["y"] == 0.5 for g in images)
    held = generate("text", 3, 0, "heldout", options=style)
    assert not {g.key for g in held} & {g.key for g in images}
    ink_columns = [
        np.nonzero((np.abs(np.asarray(g.image).astype(int) - np.array(g.spec["bg"])).sum(-1) > 100).any(0))[0]
        for g in images
    ]
    centres = [(c.min() + c.max()) / 2 for c in ink_columns]
    assert all(abs(c - 47.5) < 6 for c in centres), centres


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"vocabulary": 1}, "vocabulary"),
        ({"max_words": 4}, "max_words"),
        ({"px": [20, 10]}, "px"),
        ({"fonts": ["Comic"]}, "fonts"),
        ({"renderings": 0}, "renderings"),
        ({"position_jitter": 2}, "jitter"),
        ({"size": 3}, "unexpected keyword"),
    ],
)
def test_text_style_rejects_bad_settings_by_name(bad, message):
    with pytest.raises(ValueError, match=message):
        generate("text", 2, 0, options=bad, draw=False)


def test_generators_without_options_refuse_them():
    with pytest.raises(ValueError, match="takes no options"):
        generate("shapes", 2, 0, options={"vocabulary": 3})
