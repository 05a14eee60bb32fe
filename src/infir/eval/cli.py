"""`infir eval` in its direct forms (the recipe form, `infir eval RECIPE`, is the lead's stage runner).

infir eval --model PATH_OR_NAME --tasks gsm8k,math500,humaneval [--limit N] [--num-fewshot K] [--chat]
           [--batch-size B] [--output FILE] [--data TASK=PATH ...] [--backend hf|vllm|vl]
infir eval score --task T --samples FILE [--data PATH] --output OUT
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from infir.eval.loading import DataError


def _at_least(low: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value

    parse.__name__ = "int"
    return parse


def _eval_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="infir eval", description="Evaluate a model on benchmark tasks.")
    p.add_argument("--model", required=True, help="local folder or hub name of a causal LM")
    p.add_argument("--tasks", required=True, help="comma-separated task names (see --list-tasks)")
    p.add_argument("--limit", type=_at_least(1), help="evaluate the first N documents of each task")
    p.add_argument("--num-fewshot", type=_at_least(0), help="few-shot examples (default: each task's own)")
    p.add_argument("--chat", action="store_true", help="prompt through the tokenizer's chat template")
    p.add_argument("--batch-size", type=_at_least(1), default=16)
    p.add_argument("--max-new-tokens", type=_at_least(1), help="generation budget (default: each task's own)")
    p.add_argument(
        "--num-samples", type=_at_least(1), default=1, help="samples per prompt (pass@k); needs --temperature"
    )
    p.add_argument("--temperature", type=float, default=0.0)
    p.add_argument(
        "--data",
        action="append",
        default=[],
        metavar="[TASK=]PATH",
        help="local copy of a task's data (TASK=PATH; a bare PATH when one task is given)",
    )
    p.add_argument(
        "--output", type=Path, help="results JSON; samples go beside it as <stem>.<task>.samples.jsonl"
    )
    p.add_argument("--backend", choices=("hf", "vllm", "vl"), default="hf")  # vl: a LLaVA model, image tasks
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", default="auto", choices=("auto", "float32", "bfloat16", "float16"))
    p.add_argument("--sandbox-workers", type=_at_least(1), default=2)
    p.add_argument("--seed", type=int, default=0)
    return p


def _score_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="infir eval score", description="Score an existing samples file (JSONL)."
    )
    p.add_argument("--task", required=True)
    p.add_argument("--samples", required=True, type=Path, help="JSONL with completion + task_id or doc_index")
    p.add_argument("--data", help="local copy of the task's benchmark data")
    p.add_argument("--output", required=True, type=Path)
    p.add_argument("--workers", type=_at_least(1), default=2, help="parallel sandboxes for code tasks")
    return p


def _data_paths(values: list[str], tasks: list[str]) -> dict[str, str]:
    paths = {}
    for value in values:
        name, sep, path = value.partition("=")
        if sep and name in tasks:
            paths[name] = path
        elif not sep and len(tasks) == 1:
            paths[tasks[0]] = value
        else:
            raise DataError(f"--data {value!r}: use TASK=PATH with TASK one of {tasks}")
    return paths


def _table(results: dict) -> Table:
    table = Table(title="infir eval")
    for column in ("task", "metric", "value", "n"):
        table.add_column(column)
    for task, metrics in results.items():
        for metric, value in metrics.items():
            if metric != "n":
                table.add_row(
                    task,
                    metric,
                    f"{value:.4f}" if isinstance(value, float) else str(value),
                    str(metrics.get("n", "")),
                )
    return table


def run_eval(args: argparse.Namespace) -> int:
    from infir.eval.backends import load_backend
    from infir.eval.config import TaskSpec
    from infir.eval.runner import run_task, samples_file_name, write_samples

    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    data = _data_paths(args.data, tasks)
    specs = [
        TaskSpec(
            name=t,
            limit=args.limit,
            num_fewshot=args.num_fewshot,
            data_path=data.get(t),
            max_new_tokens=args.max_new_tokens,
            num_samples=args.num_samples,
            temperature=args.temperature,
        )
        for t in tasks
    ]
    backend = load_backend(args.backend, args.model, args.device, args.dtype)
    results = {}
    for spec in specs:
        result = run_task(
            backend,
            spec,
            chat=args.chat,
            batch_size=args.batch_size,
            sandbox_workers=args.sandbox_workers,
            seed=args.seed,
        )
        results[result.task] = result.metrics
        if args.output is not None:
            write_samples(
                args.output.with_name(f"{args.output.stem}.{samples_file_name(result.task)}"), result.samples
            )
    Console(stderr=True).print(_table(results))
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(
            json.dumps(
                {
                    "model": str(args.model),
                    "chat": args.chat,
                    "results": results,
                    "tasks": [s.model_dump(mode="json") for s in specs],
                },
                indent=2,
            )
            + "\n"
        )
    else:
        print(json.dumps(results))
    return 0


def run_score(args: argparse.Namespace) -> int:
    from infir.eval.score import score_samples

    report = score_samples(args.task, args.samples, data_path=args.data, workers=args.workers)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2, default=str) + "\n")
    Console(stderr=True).print(_table({report["task"]: dict(report["metrics"], n=report["n"])}))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if argv[:1] == ["--list-tasks"]:
        from infir.eval.registry import family_prefixes, task_names

        print("\n".join(task_names() + [f"{p}:<name>" for p in family_prefixes()]))
        return 0
    try:
        if argv[:1] == ["score"]:
            return run_score(_score_parser().parse_args(argv[1:]))
        return run_eval(_eval_parser().parse_args(argv))
    except (DataError, KeyError, ValueError, FileNotFoundError) as e:
        from pydantic import ValidationError

        message = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
        if isinstance(e, ValidationError):  # pydantic's text spans lines and links its docs
            message = "; ".join(
                f"{'.'.join(map(str, err['loc'])) or 'value'}: {err['msg']}" for err in e.errors()
            )
        print(f"infir eval: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
