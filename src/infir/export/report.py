"""Rows for the run report from the edge benchmark's JSON (`<run-dir>/export/edge.json`).

from infir.export.report import EDGE_COLUMNS, edge_rows
rows = edge_rows(run_dir / "export" / "edge.json")   # [] when the file is absent
table(EDGE_COLUMNS, [[row[c] for c in EDGE_COLUMNS] for row in rows])
"""

from __future__ import annotations

import json
from pathlib import Path

EDGE_COLUMNS = [
    "variant",
    "size_mb",
    "prompt_tok_s",
    "gen_tok_s",
    "speedup_vs_pytorch",
    "peak_rss_mb",
    "greedy_agreement",
    "heldout_nll",
    "nll_delta",
    "accuracy",
    "accuracy_delta",
]


def edge_rows(path: str | Path) -> list[dict]:
    """One row per measured variant of `edge.json` (or of the folder holding it); [] when absent."""
    path = Path(path)
    if path.is_dir():
        path = path / "edge.json"
    if not path.is_file():
        return []
    return edge_rows_from(json.loads(path.read_text()))


def edge_rows_from(data: dict) -> list[dict]:
    """One row per variant of a benchmark result dict, in the order measured; values rounded for display."""
    speedups = data.get("speedup_vs_pytorch", {})
    rows = []
    for v in data.get("variants", []):
        agreement = v.get("agreement") or {}
        prefixes = agreement.get("matching_prefix")
        acc = v.get("accuracy") or {}
        rows.append(
            {
                "variant": v["name"],
                "size_mb": round(v["file_bytes"] / 2**20, 2),
                "prompt_tok_s": v["prompt_tokens_per_s"],
                "gen_tok_s": v["gen_tokens_per_s"],
                "speedup_vs_pytorch": 1.0 if v["name"] == "torch-fp32" else speedups.get(v["name"]),
                "peak_rss_mb": v["peak_rss_mb"],
                # e.g. "32/32/32 of 32": leading greedy tokens equal to the fp32 model's, per prompt
                "greedy_agreement": (
                    f"{'/'.join(map(str, prefixes))} of {agreement.get('tokens')}"
                    if prefixes is not None
                    else None
                ),
                "heldout_nll": v.get("heldout_nll"),
                "nll_delta": v.get("heldout_nll_delta_vs_fp32"),
                "accuracy": acc.get("value"),
                "accuracy_delta": acc.get("delta_vs_fp32"),
            }
        )
    return rows
