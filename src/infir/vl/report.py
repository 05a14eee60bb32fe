"""Rows for the run report from the vl stage's skill table (`<run-dir>/vl/summary.json`).

from infir.vl.report import skill_columns_and_rows
columns, rows = skill_columns_and_rows(run_dir / "vl")   # ([], []) when the stage has not run
"""

from __future__ import annotations

import json
from pathlib import Path


def skill_columns_and_rows(stage_dir: str | Path) -> tuple[list[str], list[list]]:
    """One row per curriculum stage: the primary metric of each task evaluated after it. Columns in the
    order the table has them (the recipe's `vl.eval.tasks`, each followed by its own extra columns)."""
    path = Path(stage_dir) / "summary.json"
    if not path.is_file():
        return [], []
    table = json.loads(path.read_text()).get("table") or []
    columns = ["stage"] + [k for k in dict.fromkeys(k for row in table for k in row) if k != "stage"]
    return columns, [[row.get(c) for c in columns] for row in table]
