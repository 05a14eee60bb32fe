import pytest

from infir.eval.registry import get_task, task_names
from infir.eval.vl_scoring import (
    action_correct,
    character_error_rate,
    choice_letter,
    edit_distance,
    exact_match,
    normalize_answer,
    parse_action,
)


def test_exact_match_ignores_case_spacing_and_end_punctuation():
    assert exact_match(" Red. ", "red") and exact_match("top  left", "Top left")
    assert not exact_match("reddish", "red") and not exact_match("3", "4")
    assert normalize_answer('"yes"!') == "yes"


def test_character_error_rate_on_hand_made_pairs():
    assert edit_distance("kitten", "sitting") == 3
    assert character_error_rate("cat", "cat") == 0.0
    assert character_error_rate("cut", "cat") == pytest.approx(1 / 3)
    assert character_error_rate("", "tree") == 1.0
    assert character_error_rate("trees", "tree") == pytest.approx(0.25)
    assert character_error_rate("xyzxyzxyz", "ab") > 1  # insertions can exceed 1


def test_actions_are_parsed_from_the_last_one_written():
    assert parse_action("Save is at the top left. click(250, 300)") == {"action": "click", "x": 250, "y": 300}
    assert parse_action('type("blue \\"cat\\"")') == {"action": "type", "text": 'blue "cat"'}
    assert parse_action("scroll(down) then scroll(up)") == {"action": "scroll", "direction": "up"}
    assert parse_action("click the button") is None


def test_action_correctness_needs_type_and_argument():
    box = {"action": "click", "box": [100, 200, 300, 400]}
    assert action_correct(parse_action("click(100, 400)"), box)  # edges count
    assert not action_correct(parse_action("click(301, 300)"), box)
    assert not action_correct(parse_action('type("x")'), box)
    assert not action_correct(None, box)
    assert action_correct(parse_action('type("cat")'), {"action": "type", "text": "cat"})
    assert not action_correct(parse_action('type("cats")'), {"action": "type", "text": "cat"})
    assert action_correct(parse_action("scroll(down)"), {"action": "scroll", "direction": "down"})
    assert not action_correct(parse_action("scroll(up)"), {"action": "scroll", "direction": "down"})


def test_choice_letters():
    assert choice_letter("(B)", "ABCD") == "B"
    assert choice_letter("C. a triangle", "ABCD") == "C"
    assert choice_letter("The answer is D", "ABCD") == "D"
    assert choice_letter("A or B", "ABCD") is None
    assert choice_letter("E", "ABCD") is None


@pytest.mark.parametrize("name", ["vl_vqa", "vl_position", "vl_ocr", "vl_gui", "vl_math"])
def test_generated_tasks_are_registered_and_score_their_references_correct(name):
    assert name in task_names()
    task = get_task(name, n=15, size=32)
    docs = task.docs()
    assert docs and all(len(d["images"]) == 1 for d in docs)
    verdicts = [task.evaluate(d, task.reference_output(d)) for d in docs]
    assert all(v["correct"] for v in verdicts)
    wrong = [task.evaluate(d, "nothing useful") for d in docs]
    assert not any(v["correct"] for v in wrong)
    metrics = task.aggregate(verdicts)
    assert metrics[task.primary_metric] == 1.0
    # the held-out docs are the held-out split, stable across constructions
    assert [d["key"] for d in get_task(name, n=15, size=32).docs()] == [d["key"] for d in docs]


def test_vqa_reports_chance_per_kind_and_ocr_reports_cer():
    task = get_task("vl_vqa", n=30, size=32)
    docs = task.docs()
    metrics = task.aggregate([task.evaluate(d, "2") for d in docs])
    assert 0.1 < metrics["chance"] < 0.5
    assert {"accuracy_shapes", "accuracy_charts"} <= set(metrics)
    ocr = get_task("vl_ocr", n=5, size=32)
    doc = ocr.docs()[0]
    m = ocr.aggregate([ocr.evaluate(doc, doc["answer"][:-1])])
    assert m["exact_match"] == 0.0 and m["cer"] == pytest.approx(1 / len(doc["answer"]))
    # A model that answers the same word for every image matches by chance as often as that word is the
    # reference: shuffling its answers across the images changes nothing.
    docs = [{"answer": a} for a in ("box", "box", "cat", "dog")]
    constant = ocr.aggregate([ocr.evaluate(d, "box") for d in docs])
    assert constant["exact_match"] == constant["exact_match_shuffled"] == 0.5
    reader = ocr.aggregate([ocr.evaluate(d, d["answer"]) for d in docs])
    assert reader["exact_match"] == 1.0 and reader["exact_match_shuffled"] == pytest.approx((4 + 1 + 1) / 16)


def test_position_task_asks_only_where_a_shape_is():
    task = get_task("vl_position", n=40, size=32)
    docs = task.docs()
    assert len(docs) > 30 and {d["kind"] for d in docs} == {"position"}
    assert all(d["question"].startswith("Where is the") for d in docs)
    metrics = task.aggregate([task.evaluate(d, "center") for d in docs])
    assert metrics["chance"] == pytest.approx(1 / 9)
    assert metrics["accuracy"] == pytest.approx(sum(d["answer"] == "center" for d in docs) / len(docs))


def test_vl_tasks_refuse_text_only_prompts():
    task = get_task("vl_ocr", n=2, size=32)
    with pytest.raises(ValueError, match="shows images"):
        task.build_prompt(task.docs()[0], chat=True)  # no tokenizer with a chat template
    messages = task.vl_messages(task.docs()[0])
    assert messages[0]["content"].startswith("<image>\n")
