"""Evaluate one model on a list of tasks: prompts -> backend -> verdicts -> metrics + samples files.

The one evaluation path: `infir eval --model ...`, the recipe's eval stage and the vl stage's evaluation
after each curriculum stage (text and image tasks alike; see `backends.VLBackend`). Every sample is written with its prompt,
output, extracted answer and verdict, one JSON line each, in document order.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from infir.eval.config import TaskSpec
from infir.eval.registry import get_task
from infir.eval.task import Task
from infir.jsonl import write_jsonl

log = logging.getLogger("infir.eval")


@dataclass
class TaskResult:
    task: str
    metrics: dict[str, Any]
    samples: list[dict]
    seconds: float


def build_task(spec: TaskSpec) -> Task:
    options = dict(spec.options)
    if spec.max_new_tokens is not None:
        options["max_new_tokens"] = spec.max_new_tokens
    return get_task(spec.name, data_path=spec.data_path, **options)


def _progress(enabled: bool) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        transient=True,
        disable=not enabled,
    )


def run_task(
    backend,
    spec: TaskSpec,
    *,
    chat: bool = False,
    batch_size: int = 16,
    sandbox_workers: int = 2,
    seed: int = 0,
    show_progress: bool = True,
) -> TaskResult:
    task = build_task(spec)
    if task.modality == "image" and not getattr(backend, "sees_images", False):
        raise ValueError(
            f"task {task.name!r} shows images: evaluate it with a VL model (the vl stage's "
            f"vl.eval.tasks), not with the text-only {getattr(backend, 'name', 'given')} backend"
        )
    docs = task.docs(spec.limit)
    num_fewshot = task.default_num_fewshot if spec.num_fewshot is None else spec.num_fewshot
    tokenizer = backend.tokenizer
    prompts = [
        task.build_prompt(doc, num_fewshot=num_fewshot, chat=chat, tokenizer=tokenizer) for doc in docs
    ]
    t0 = time.perf_counter()
    with _progress(show_progress) as progress:
        if task.kind == "multiple_choice":
            samples, verdicts = _score_choices(backend, task, docs, prompts, chat, batch_size, progress)
        else:
            samples, verdicts = _generate_and_judge(
                backend, task, spec, docs, prompts, chat, batch_size, sandbox_workers, seed, progress
            )
    metrics = task.aggregate(verdicts)
    metrics["n"] = len(docs)
    if task.kind != "multiple_choice" and samples:
        # A model that never learned to end its turn runs to the length limit; this is how to see it.
        metrics["stopped"] = sum(s["finish_reason"] != "length" for s in samples) / len(samples)
    seconds = time.perf_counter() - t0
    stats = getattr(backend, "last_stats", None)
    if task.kind != "multiple_choice" and stats is not None and stats.seconds:
        metrics["tokens_per_second"] = round(stats.tokens_per_second, 1)
    log.info("%s: %s (%d docs, %.1fs)", task.name, {k: v for k, v in metrics.items()}, len(docs), seconds)
    return TaskResult(task.name, metrics, samples, seconds)


def _score_choices(backend, task, docs, prompts, chat, batch_size, progress):
    requests, owners = [], []
    for i, (doc, prompt) in enumerate(zip(docs, prompts)):
        for cont in task.continuations(doc, chat=chat):
            requests.append((prompt, cont))
            owners.append(i)
    bar = progress.add_task(f"{task.name} (log-likelihood)", total=len(requests))
    scored = backend.loglikelihood(
        requests, batch_size=batch_size, progress=lambda n: progress.advance(bar, n)
    )
    per_doc: list[list[float]] = [[] for _ in docs]
    for owner, s in zip(owners, scored):
        per_doc[owner].append(s.logprob)
    samples, verdicts = [], []
    for i, (doc, prompt) in enumerate(zip(docs, prompts)):
        verdict = task.evaluate_loglikelihoods(doc, per_doc[i])
        verdict["doc_id"] = task.doc_id(doc, i)
        verdicts.append(verdict)
        samples.append({"doc_index": i, "prompt": prompt, "output": verdict["extracted"], **verdict})
    return samples, verdicts


def _generate_and_judge(backend, task, spec, docs, prompts, chat, batch_size, workers, seed, progress):
    bar = progress.add_task(f"{task.name} (generate)", total=len(prompts) * spec.num_samples)
    # A task that shows images hands each prompt's images to the backend beside it.
    images = {"images": [task.images(doc) for doc in docs]} if task.modality == "image" else {}
    generations = backend.generate(
        prompts,
        max_new_tokens=task.max_new_tokens,
        stop=task.stops(chat),
        temperature=spec.temperature,
        num_samples=spec.num_samples,
        seed=seed,
        batch_size=batch_size,
        progress=lambda n: progress.advance(bar, n),
        **images,
    )
    expanded = [doc for doc in docs for _ in range(spec.num_samples)]
    outputs = [g.text for g in generations]
    judge = progress.add_task(f"{task.name} (judge)", total=len(outputs))
    verdicts = task.evaluate_many(expanded, outputs, workers=workers)
    progress.advance(judge, len(outputs))
    samples = []
    key = "task_id" if task.kind == "code" else "doc_index"
    for j, (doc, gen, verdict) in enumerate(zip(expanded, generations, verdicts)):
        index = j // spec.num_samples
        verdict["doc_id"] = task.doc_id(doc, index)
        record = {
            key: task.doc_id(doc, index),
            "sample": j % spec.num_samples,
            "prompt": prompts[index],
            "output": gen.text,
            "finish_reason": gen.finish_reason,
        }
        record.update({k: v for k, v in verdict.items() if k != "doc_id"})
        samples.append(record)
    return samples, verdicts


def write_samples(path: Path, samples: list[dict]) -> None:
    write_jsonl(path, samples, default=str)


def evaluate_model(
    backend,
    specs: list[TaskSpec],
    *,
    chat: bool,
    batch_size: int,
    samples_dir: Path | None,
    sandbox_workers: int = 2,
    seed: int = 0,
) -> dict[str, dict[str, Any]]:
    """Metrics per task (`{task: {metric: value, "n": N}}`).

    Samples go to `<samples_dir>/<task>.samples.jsonl`.
    """
    results = {}
    for spec in specs:
        result = run_task(
            backend, spec, chat=chat, batch_size=batch_size, sandbox_workers=sandbox_workers, seed=seed
        )
        results[result.task] = result.metrics
        if samples_dir is not None:
            write_samples(samples_dir / samples_file_name(result.task), result.samples)
    return results


def samples_file_name(task: str) -> str:
    return task.replace(":", "_").replace("/", "_") + ".samples.jsonl"
