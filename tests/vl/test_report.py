"""The vl skill table reaches the run report."""

import json

from infir.vl.report import skill_columns_and_rows


def test_skill_table_rows_and_report_section(tmp_path):
    table = [
        {"stage": "alignment", "vl_ocr": 0.0, "vl_vqa": 0.4, "vl_vqa_chance": 0.25},
        {"stage": "perception", "vl_ocr": 0.3, "vl_vqa": 0.5, "vl_vqa_chance": 0.25, "vl_custom": 1.0},
    ]
    (tmp_path / "vl").mkdir()
    (tmp_path / "vl" / "summary.json").write_text(json.dumps({"table": table}))
    columns, rows = skill_columns_and_rows(tmp_path / "vl")
    assert columns == ["stage", "vl_ocr", "vl_vqa", "vl_vqa_chance", "vl_custom"]  # the table's own order
    assert rows == [["alignment", 0.0, 0.4, 0.25, None], ["perception", 0.3, 0.5, 0.25, 1.0]]
    assert skill_columns_and_rows(tmp_path / "absent") == ([], [])

    from infir.report.render import write_report

    page = write_report(tmp_path).read_text()
    assert "Vision-language skills" in page and "<td>perception</td>" in page


def test_skill_table_shows_ocr_next_to_its_no_reading_level():
    from infir.vl.stage import skill_table

    stages = [
        {
            "stage": "perception",
            "eval": {
                "vl_ocr": {"exact_match": 0.4, "exact_match_shuffled": 0.15, "cer": 0.5, "n": 200},
                "vl_vqa": {"accuracy": 0.5, "chance": 0.26, "n": 400},
                "vl_position": {"accuracy": 0.3, "chance": 0.111, "n": 150},
            },
        }
    ]
    assert skill_table(stages) == [
        {
            "stage": "perception",
            "vl_ocr": 0.4,
            "vl_ocr_shuffled": 0.15,
            "vl_ocr_cer": 0.5,
            "vl_vqa": 0.5,
            "vl_vqa_chance": 0.26,
            "vl_position": 0.3,
            "vl_position_chance": 0.111,
        }
    ]
