"""Read what the stages left in a run directory into one plain dict (no plotting here)."""

from __future__ import annotations

import json
from pathlib import Path

from infir.run import MARKER, read_json

TRAINING = ("pretrain", "anneal", "sft", "rl")


def _jsonl(path: Path, limit: int | None = None) -> list[dict]:
    if not path.exists():
        return []
    rows = []
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path} is corrupt (line {number} is not JSON: {exc})") from None
            if limit is not None and len(rows) >= limit:
                break
    return rows


def collect(run_dir: Path, samples_per_task: int = 3) -> dict:
    run_dir = Path(run_dir)
    out: dict = {"run_dir": str(run_dir), "stages": {}, "metrics": {}, "funnel": [], "eval": {}, "samples": {}}
    from infir.config import STAGE_ORDER

    def pipeline_order(p: Path) -> tuple[int, str]:
        return (STAGE_ORDER.index(p.name) if p.name in STAGE_ORDER else len(STAGE_ORDER), p.name)

    for stage_dir in sorted((p for p in run_dir.iterdir() if p.is_dir()), key=pipeline_order):
        summary = stage_dir / "summary.json"
        if summary.exists():
            out["stages"][stage_dir.name] = {"summary": read_json(summary),
                                             "complete": (stage_dir / MARKER).exists()}
    for name in TRAINING:
        metrics = _jsonl(run_dir / name / "metrics.jsonl")
        if metrics:
            out["metrics"][name] = metrics
    out["funnel"] = funnel(out["stages"])
    ev = out["stages"].get("eval", {}).get("summary", {})
    out["eval"] = ev.get("results", {})
    for trained, tasks in out["eval"].items():
        for task in tasks:
            rows = _jsonl(run_dir / "eval" / trained / f"{task}.samples.jsonl", samples_per_task)
            if rows:
                out["samples"].setdefault(trained, {})[task] = rows
    return out


def funnel(stages: dict) -> list[dict]:
    """Documents (and tokens where known) after each curation step, then the tokenized total."""
    rows = []
    curate = stages.get("curate", {}).get("summary", {})
    steps = curate.get("steps", [])
    if steps:
        first = steps[0]
        rows.append({"step": "input", "docs": first.get("docs_in"), "tokens": first.get("tokens_in")})
        for step in steps:
            rows.append({"step": step.get("name"), "docs": step.get("docs_out"), "tokens": step.get("tokens_out"),
                         "dropped": step.get("dropped", {})})
    domains = stages.get("tokenize", {}).get("summary", {}).get("domains", {})
    if domains:
        rows.append({"step": "tokenized", "docs": sum(d.get("docs", 0) for d in domains.values()),
                     "tokens": sum(d.get("tokens", 0) for d in domains.values()),
                     "by_domain": {k: d.get("tokens", 0) for k, d in domains.items()}})
    return rows
