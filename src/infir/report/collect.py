"""Read what the stages left in a run directory into one plain dict (no plotting here)."""

from __future__ import annotations

import json
from pathlib import Path

from infir.run import MARKER, read_json
from infir.stages import STAGE_ORDER, checkpoint_stages


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
    out: dict = {
        "run_dir": str(run_dir),
        "stages": {},
        "metrics": {},
        "funnel": [],
        "eval": {},
        "intervals": {},
        "gains": {},
        "examples": {},
    }

    def pipeline_order(p: Path) -> tuple[int, str]:
        return (STAGE_ORDER.index(p.name) if p.name in STAGE_ORDER else len(STAGE_ORDER), p.name)

    for stage_dir in sorted((p for p in run_dir.iterdir() if p.is_dir()), key=pipeline_order):
        summary = stage_dir / "summary.json"
        if summary.exists():
            out["stages"][stage_dir.name] = {
                "summary": read_json(summary),
                "complete": (stage_dir / MARKER).exists(),
            }
    for name in checkpoint_stages():
        metrics = _jsonl(run_dir / name / "metrics.jsonl")
        if metrics:
            out["metrics"][name] = metrics
    out["funnel"] = funnel(out["stages"])
    ev = out["stages"].get("eval", {}).get("summary", {})
    out["eval"] = ev.get("results", {})
    out["intervals"] = ev.get("intervals", {})
    out["gains"] = ev.get("gains", {})
    tasks = sorted({task for tasks in out["eval"].values() for task in tasks})
    out["examples"] = {
        task: fixed_examples(run_dir / "eval", list(out["eval"]), task, samples_per_task) for task in tasks
    }
    out["examples"] = {task: rows for task, rows in out["examples"].items() if rows}
    return out


def fixed_examples(eval_dir: Path, stages: list[str], task: str, k: int) -> list[dict]:
    """`k` problems spread evenly over the task (its families come in blocks), each with every stage's
    answer: the same problems for every stage, so a reader follows one problem through the pipeline."""
    from infir.eval.runner import samples_file_name

    by_stage = {}
    for stage in stages:
        rows = _jsonl(eval_dir / stage / samples_file_name(task))
        by_stage[stage] = {
            row.get("doc_index", i): row for i, row in enumerate(rows) if row.get("sample", 0) == 0
        }
    by_stage = {stage: rows for stage, rows in by_stage.items() if rows}
    if k <= 0 or not by_stage:
        return []
    common = sorted(set.intersection(*(set(rows) for rows in by_stage.values())))
    picked = [common[i * len(common) // k] for i in range(min(k, len(common)))]
    examples = []
    for index in picked:
        first = next(iter(by_stage.values()))[index]
        examples.append(
            {
                "doc_index": index,
                "prompt": first.get("prompt", ""),
                "answers": {
                    stage: {key: rows[index].get(key) for key in ("output", "extracted", "correct")}
                    for stage, rows in by_stage.items()
                },
            }
        )
    return examples


def funnel(stages: dict) -> list[dict]:
    """Documents (and tokens where known) after each curation step, then the tokenized total."""
    rows = []
    curate = stages.get("curate", {}).get("summary", {})
    steps = curate.get("steps", [])
    if steps:
        first = steps[0]
        rows.append({"step": "input", "docs": first.get("docs_in"), "tokens": first.get("tokens_in")})
        for step in steps:
            rows.append(
                {
                    "step": step.get("name"),
                    "docs": step.get("docs_out"),
                    "tokens": step.get("tokens_out"),
                    "dropped": step.get("dropped", {}),
                }
            )
    domains = stages.get("tokenize", {}).get("summary", {}).get("domains", {})
    if domains:
        rows.append(
            {
                "step": "tokenized",
                "docs": sum(d.get("docs", 0) for d in domains.values()),
                "tokens": sum(d.get("tokens", 0) for d in domains.values()),
                "by_domain": {k: d.get("tokens", 0) for k, d in domains.items()},
            }
        )
    return rows
