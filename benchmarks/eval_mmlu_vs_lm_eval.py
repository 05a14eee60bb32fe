"""MMLU-STEM log-likelihood scoring: infir vs lm-evaluation-harness, per-question agreement and speed.

Both load the same checkpoint from disk and read the same local MMLU-STEM file; lm-eval runs a task
defined exactly like its own `mmlu_*` tasks (subject line, lettered choices, " A".." D" continuations)
but pointed at the local JSONL, offline. Printed: each side's accuracy and seconds, the fraction of
questions where both pick the same choice, and the speed ratio.

    python benchmarks/eval_mmlu_vs_lm_eval.py [--model DIR] [--limit N] [--batch-size 16]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from eval_tiny_model import SHARED, train_tiny_model  # noqa: E402


def task_config(data: Path) -> dict:
    """lm-eval's own `mmlu_*` task definition, pointed at the local JSONL (subject field: `type`)."""
    return {
        "task": "infir_mmlu_stem_local",
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(data)}},
        "test_split": "test",
        "output_type": "multiple_choice",
        "description": "The following are multiple choice questions (with answers) about "
        "{{type.replace('_', ' ')}}.\n\n",
        "doc_to_text": "{{question.strip()}}\nA. {{choices[0]}}\nB. {{choices[1]}}\nC. {{choices[2]}}"
        "\nD. {{choices[3]}}\nAnswer:",
        "doc_to_choice": ["A", "B", "C", "D"],
        "doc_to_target": "answer",
        "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True}],
    }


def lm_eval_choices(
    model_dir: Path, data: Path, limit: int | None, batch_size: int
) -> tuple[list[int], float]:
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    task_dir = Path(tempfile.mkdtemp(prefix="infir-lm-eval-task-"))
    (task_dir / "infir_mmlu_stem_local.yaml").write_text(yaml.safe_dump(task_config(data)))
    lm = HFLM(pretrained=str(model_dir), device="cpu", dtype="float32", batch_size=batch_size)
    t0 = time.perf_counter()
    out = simple_evaluate(
        model=lm,
        tasks=["infir_mmlu_stem_local"],
        num_fewshot=0,
        limit=limit,
        task_manager=TaskManager(include_path=str(task_dir)),
        log_samples=True,
        bootstrap_iters=0,
    )
    seconds = time.perf_counter() - t0
    samples = sorted(out["samples"]["infir_mmlu_stem_local"], key=lambda s: s["doc_id"])
    choices = []
    for s in samples:
        logliks = [r[0] if isinstance(r, (list, tuple)) else r for r in s["filtered_resps"]]
        logliks = [x[0] if isinstance(x, (list, tuple)) else x for x in logliks]
        choices.append(max(range(len(logliks)), key=lambda i: float(logliks[i])))
    return choices, seconds


def infir_choices(model_dir: Path, data: Path, limit: int | None, batch_size: int) -> tuple[list[int], float]:
    from infir.eval.backends import HFBackend
    from infir.eval.config import TaskSpec
    from infir.eval.runner import run_task

    backend = HFBackend.load(model_dir, device="cpu", dtype="float32")
    t0 = time.perf_counter()
    result = run_task(
        backend,
        TaskSpec(name="mmlu_stem", data_path=str(data), limit=limit),
        batch_size=batch_size,
        show_progress=False,
    )
    return [s["choice"] for s in result.samples], time.perf_counter() - t0


def compare(model_dir: Path, data: Path, limit: int | None, batch_size: int) -> dict:
    theirs, lm_eval_seconds = lm_eval_choices(model_dir, data, limit, batch_size)
    ours, infir_seconds = infir_choices(model_dir, data, limit, batch_size)
    if len(theirs) != len(ours):
        raise RuntimeError(f"lm-eval scored {len(theirs)} questions, infir {len(ours)}")
    golds = [json.loads(line)["answer"] for line, _ in zip(data.open(), range(len(ours)))]
    agree = sum(a == b for a, b in zip(theirs, ours))
    return {
        "questions": len(ours),
        "agreement": round(agree / len(ours), 4),
        "lm_eval_accuracy": round(sum(a == g for a, g in zip(theirs, golds)) / len(ours), 4),
        "infir_accuracy": round(sum(a == g for a, g in zip(ours, golds)) / len(ours), 4),
        "lm_eval_seconds": round(lm_eval_seconds, 2),
        "infir_seconds": round(infir_seconds, 2),
        "speedup_vs_lm_eval": round(lm_eval_seconds / infir_seconds, 2),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, help="checkpoint folder (default: train the small benchmark model)")
    p.add_argument("--limit", type=int, help="first N questions (default: all 3,018)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--shared", type=Path, default=SHARED)
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads, the same for both sides")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    model_dir = args.model or train_tiny_model(Path(tempfile.mkdtemp(prefix="infir-bench-model-")))
    data = args.shared / "benchmarks" / "mmlu_stem" / "test.jsonl"
    print(json.dumps(compare(model_dir, data, args.limit, args.batch_size)))


if __name__ == "__main__":
    main()
