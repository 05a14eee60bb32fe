import json

import pytest
from PIL import Image

from infir.model.vlm import IMAGE_TOKEN
from infir.sft.data import BadRecord, LoadReport
from infir.model.vlm_inputs import open_image
from infir.vl.data import content_to_text, from_record, load_hf_conversations, load_llava_json


def _llava_dir(tmp_path):
    (tmp_path / "imgs").mkdir()
    Image.new("RGB", (20, 20), "red").save(tmp_path / "imgs" / "a.png")
    Image.new("RGBA", (20, 10), "blue").save(tmp_path / "imgs" / "b.png")
    return tmp_path


def test_llava_json_records_with_relative_images(tmp_path):
    root = _llava_dir(tmp_path)
    records = [
        {
            "id": "1",
            "image": "imgs/a.png",
            "conversations": [
                {"from": "human", "value": "<image>\nWhat color is it?"},
                {"from": "gpt", "value": "red"},
            ],
        },
        {
            "id": "2",
            "image": ["imgs/a.png", "imgs/b.png"],
            "conversations": [
                {"from": "human", "value": "Compare them."},
                {"from": "gpt", "value": "red and blue"},
            ],
        },
        {"id": "3", "conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}]},
    ]
    path = root / "data.json"
    path.write_text(json.dumps(records))
    convs = load_llava_json(path)
    assert [len(c.images) for c in convs] == [1, 2, 0]
    assert convs[0].messages[0] == {"role": "user", "content": "<image>\nWhat color is it?"}
    assert convs[1].messages[0]["content"].startswith(IMAGE_TOKEN * 2 + "\n")  # LLaVA's convention
    assert open_image(convs[1].images[1]).mode == "RGB"
    assert convs[0].source == f"{path}[0]"


def test_llava_errors_name_the_file_and_record(tmp_path):
    root = _llava_dir(tmp_path)
    bad = [
        {
            "image": "imgs/a.png",
            "conversations": [
                {"from": "human", "value": "<image> <image> two?"},
                {"from": "gpt", "value": "no"},
            ],
        }
    ]
    (root / "bad.json").write_text(json.dumps(bad))
    with pytest.raises(BadRecord, match=r"bad.json\[0\].*image_count_mismatch"):
        load_llava_json(root / "bad.json")
    missing = [
        {
            "image": "imgs/zzz.png",
            "conversations": [{"from": "human", "value": "<image>"}, {"from": "gpt", "value": "x"}],
        }
    ]
    (root / "missing.json").write_text(json.dumps(missing))
    with pytest.raises(BadRecord, match="zzz.png"):
        load_llava_json(root / "missing.json")
    report = LoadReport()
    assert load_llava_json(root / "missing.json", on_bad_record="drop", report=report) == []
    assert report.dropped["missing_image"] == 1
    (root / "lines.jsonl").write_text('{"image": "imgs/a.png", "conversations": []}\nnot json\n')
    report = LoadReport()
    assert load_llava_json(root / "lines.jsonl", on_bad_record="drop", report=report) == []
    assert dict(report.dropped) == {"no_messages": 1, "not_json": 1}
    (root / "obj.json").write_text('{"a": 1}')
    with pytest.raises(ValueError, match="list of records"):
        load_llava_json(root / "obj.json")


def test_answers_cannot_hold_images():
    with pytest.raises(BadRecord, match="image_in_answer"):
        from_record(
            {
                "image": ["x.png", "y.png"],
                "conversations": [
                    {"from": "human", "value": "hi <image>"},
                    {"from": "gpt", "value": "<image>"},
                ],
            },
            "r",
            None,
        )


def test_transformers_content_lists_and_cauldron_texts():
    assert (
        content_to_text([{"type": "image"}, {"type": "text", "text": "What is it?"}]) == "<image>What is it?"
    )
    img = Image.new("RGB", (8, 8))
    conv = from_record(
        {
            "images": [img],
            "texts": [{"user": "Read it.", "assistant": "stop"}, {"user": "Color?", "assistant": "red"}],
        },
        "cauldron#0",
    )
    assert conv.images == [img] and len(conv.messages) == 4
    assert conv.messages[0]["content"] == "<image>\nRead it."


def test_hf_datasets_loader_keeps_images_lazy(tmp_path):
    import datasets

    images = [Image.new("RGB", (16, 16), c) for c in ("red", "green", "blue")]
    ds = datasets.Dataset.from_dict(
        {
            "images": [[images[0]], [images[1], images[2]], []],
            "texts": [
                [{"user": "Color?", "assistant": "red"}],
                [{"user": "Colors?", "assistant": "green, blue"}],
                [{"user": "Hi", "assistant": "Hello"}],
            ],
        }
    ).cast_column("images", datasets.Sequence(datasets.Image()))
    ds.to_parquet(str(tmp_path / "train.parquet"))
    convs = load_hf_conversations("parquet", split="train", data_files=str(tmp_path / "train.parquet"))
    assert [len(c.images) for c in convs] == [1, 2, 0]
    assert type(convs[1].images[1]).__name__ == "LazyImage"
    assert open_image(convs[1].images[1]).getpixel((0, 0)) == (0, 0, 255)
    assert convs[1].messages[0]["content"] == "<image><image>\nColors?"
    assert (
        len(
            load_hf_conversations(
                "parquet", split="train", data_files=str(tmp_path / "train.parquet"), limit=2
            )
        )
        == 2
    )
