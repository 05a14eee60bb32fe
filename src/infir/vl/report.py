"""Rows for the run report from the vl stage's skill table (`<run-dir>/vl/summary.json`).

from infir.vl.report import skill_columns_and_rows
columns, rows = skill_columns_and_rows(run_dir / "vl")   # ([], []) when the stage has not run
"""

from __future__ import annotations

import json
from pathlib import Path

# Task columns in curriculum order of the skills, then anything else a recipe evaluates.
KNOWN = ["vl_vqa", "vl_vqa_chance", "vl_position", "vl_position_chance", "vl_ocr", "vl_ocr_shuffled",
         "vl_ocr_cer", "vl_gui", "vl_math", "vl_mmmu", "vl_screenspot"]


def skill_columns_and_rows(stage_dir: str | Path) -> tuple[list[str], list[list]]:
    """One row per curriculum stage: the primary metric of each task evaluated after it."""
    path = Path(stage_dir) / "summary.json"
    if not path.is_file():
        return [], []
    table = json.loads(path.read_text()).get("table") or []
    present = {k for row in table for k in row if k != "stage"}
    columns = ["stage"] + [k for k in KNOWN if k in present] + sorted(present - set(KNOWN))
    return columns, [[row.get(c) for c in columns] for row in table]
