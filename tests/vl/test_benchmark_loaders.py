import io
import re
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from infir.eval.loading import DataError
from infir.eval.registry import get_task
from infir.model.vlm_inputs import open_image


def _png(color, size=(50, 40)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


def test_mmmu_parquet_in_hub_format(tmp_path):
    rows = [
        {
            "id": "validation_Math_1",
            "question": "Which shape is shown in <image 1>?",
            "options": "['circle', 'square', 'triangle']",
            "answer": "B",
            "question_type": "multiple-choice",
            "image_1": {"bytes": _png("red"), "path": None},
            "image_2": None,
            "subfield": "Geometry",
        },
        {
            "id": "validation_Math_2",
            "question": "Compare <image 2> with <image 1>. How many sides?",
            "options": "[]",
            "answer": "4",
            "question_type": "open",
            "image_1": {"bytes": _png("red"), "path": None},
            "image_2": {"bytes": _png("blue"), "path": None},
            "subfield": "Geometry",
        },
    ]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "validation.parquet")
    task = get_task("vl_mmmu", data_path=str(tmp_path))
    docs = task.docs()
    assert len(docs) == 2
    first, second = docs
    assert first["prompt"].count("<image>") == 1 and "A. circle\nB. square\nC. triangle" in first["prompt"]
    assert second["prompt"].index("<image>") < second["prompt"].index("with")
    assert [open_image(im).getpixel((0, 0)) for im in second["images"]] == [(0, 0, 255), (255, 0, 0)]
    assert task.evaluate(first, "B")["correct"] and task.evaluate(first, "(B) square")["correct"]
    assert not task.evaluate(first, "A")["correct"]
    assert task.evaluate(second, "4")["correct"] and task.evaluate(second, "4.0")["correct"]
    assert not task.evaluate(second, "5")["correct"]
    assert task.vl_messages(first)[0]["content"] == first["prompt"]


def test_mmmu_bad_options_name_the_record(tmp_path):
    rows = [{"id": "x1", "question": "q", "options": "[unclosed", "answer": "A", "image_1": None}]
    (tmp_path / "validation.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    with pytest.raises(DataError, match="x1"):
        get_task("vl_mmmu", data_path=str(tmp_path)).docs()


def test_screenspot_seeclick_json_with_pixel_boxes(tmp_path):
    (tmp_path / "images").mkdir()
    Image.new("RGB", (200, 100), "white").save(tmp_path / "images" / "mobile_1.png")
    records = [
        {
            "img_filename": "mobile_1.png",
            "bbox": [20, 10, 40, 30],
            "instruction": "open settings",
            "data_type": "icon",
            "data_source": "android",
        }
    ]
    path = tmp_path / "screenspot_mobile.json"
    path.write_text(json.dumps(records))
    task = get_task("vl_screenspot", data_path=str(path))
    doc = task.docs()[0]
    assert doc["box"] == [100.0, 100.0, 300.0, 400.0]  # [x, y, w, h] px -> corners in [0, 1000]
    assert task.evaluate(doc, "click(200, 250)")["correct"]
    assert not task.evaluate(doc, "click(500, 250)")["correct"]
    assert task.evaluate(doc, task.reference_output(doc))["correct"]
    assert task.aggregate([task.evaluate(doc, "click(200, 250)")])["accuracy_icon"] == 1.0


def test_screenspot_hub_rows_with_normalised_boxes(tmp_path):
    rows = [
        {
            "file_name": "web_1.png",
            "bbox": [0.5, 0.5, 0.75, 0.6],
            "instruction": "search",
            "data_type": "text",
            "data_source": "shop",
            "image": {"bytes": _png("white"), "path": None},
        }
    ]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "test.parquet")
    task = get_task("vl_screenspot", data_path=str(tmp_path))
    doc = task.docs()[0]
    assert doc["box"] == [500.0, 500.0, 750.0, 600.0]
    assert task.evaluate(doc, "The search box. click(600, 550)")["correct"]


def test_screenspot_missing_image_names_the_record(tmp_path):
    path = tmp_path / "s.json"
    path.write_text(json.dumps([{"img_filename": "nope.png", "bbox": [0, 0, 1, 1], "instruction": "x"}]))
    with pytest.raises(DataError, match="record 0.*nope.png"):
        get_task("vl_screenspot", data_path=str(path)).docs()


def _episodes(tmp_path):
    (tmp_path / "screens").mkdir()
    for k in range(3):
        Image.new("RGB", (108, 240), (40 * k, 90, 200)).save(tmp_path / "screens" / f"s{k}.png")
    return [
        {
            "episode_id": "e1",
            "goal": "Turn on Wi-Fi",
            "steps": [
                {
                    "screenshot": "screens/s0.png",
                    "action": {"action_type": "click", "x": 500, "y": 120, "bbox": [400, 100, 600, 140]},
                },
                {"screenshot": "screens/s1.png", "action": {"action_type": "scroll", "direction": "down"}},
                {"screenshot": "screens/s2.png", "action": {"action_type": "type", "text": 'say "hi"'}},
            ],
        },
        {
            "episode_id": "e2",
            "goal": "Open the clock",
            "steps": [
                {
                    "screenshot": {"bytes": _png("green", (108, 240)), "path": None},
                    "action": {"action_type": "click", "x": 250, "y": 900},
                }
            ],
        },
    ]


def test_android_episodes_become_one_document_per_step(tmp_path):
    episodes = _episodes(tmp_path)
    (tmp_path / "test.jsonl").write_text(
        "\n".join(
            json.dumps(
                {
                    **e,
                    "steps": [
                        {
                            **s,
                            "screenshot": s["screenshot"]
                            if isinstance(s["screenshot"], str)
                            else "screens/s0.png",
                        }
                        for s in e["steps"]
                    ],
                }
            )
            for e in episodes
        )
    )
    task = get_task("vl_android_episodes", data_path=str(tmp_path))
    docs = task.docs()
    assert len(docs) == 4 and [d["step"] for d in docs] == [0, 1, 2, 0]
    assert "Previous actions: none" in docs[0]["question"] and "Turn on Wi-Fi" in docs[0]["question"]
    assert "Previous actions: click(500, 120); scroll(down)" in docs[2]["question"]
    assert open_image(docs[1]["images"][0]).getpixel((0, 0)) == (40, 90, 200)
    click, scroll, typed, loose = docs
    assert (
        task.evaluate(click, "click(590, 135)")["correct"]
        and not task.evaluate(click, "click(620, 120)")["correct"]
    )
    assert (
        task.evaluate(scroll, "scroll(down)")["correct"]
        and not task.evaluate(scroll, "scroll(up)")["correct"]
    )
    assert (
        task.evaluate(typed, typed["answer"])["correct"]
        and task.reference_output(typed) == 'type("say \\"hi\\"")'
    )
    assert task.evaluate(loose, "click(300, 950)")["correct"]  # within the 70-unit tolerance, no bbox logged
    assert not task.evaluate(loose, "click(400, 900)")["correct"]
    metrics = task.aggregate([task.evaluate(d, task.reference_output(d)) for d in docs])
    assert metrics["accuracy"] == 1.0 and metrics["accuracy_click"] == 1.0


def test_android_episodes_from_parquet_with_image_bytes(tmp_path):
    rows = _episodes(tmp_path)[1:]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "test.parquet")
    doc = get_task("vl_android_episodes", data_path=str(tmp_path)).docs()[0]
    assert open_image(doc["images"][0]).getpixel((0, 0)) == (0, 128, 0)


@pytest.mark.parametrize(
    "bad,field",
    [
        ({"action_type": "swipe"}, "steps[0].action.action_type"),
        ({"action_type": "click", "x": 1500, "y": 10}, "steps[0].action.x"),
        ({"action_type": "click", "x": 10, "y": 10, "bbox": [50, 0, 10, 20]}, "steps[0].action.bbox"),
        ({"action_type": "type"}, "steps[0].action.text"),
        ({"action_type": "scroll", "direction": "sideways"}, "steps[0].action.direction"),
    ],
)
def test_android_episode_field_errors_name_the_field(tmp_path, bad, field):
    (tmp_path / "test.jsonl").write_text(
        json.dumps({"episode_id": "e9", "goal": "g", "steps": [{"screenshot": "x.png", "action": bad}]})
    )
    with pytest.raises(DataError, match=re.escape(f"episode e9, {field}")):
        get_task("vl_android_episodes", data_path=str(tmp_path)).docs()


def test_android_episodes_need_goal_and_steps(tmp_path):
    (tmp_path / "test.jsonl").write_text(json.dumps({"episode_id": "e1", "task": "no goal field"}))
    with pytest.raises(DataError, match="goal"):
        get_task("vl_android_episodes", data_path=str(tmp_path)).docs()
