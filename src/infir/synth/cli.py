"""`infir synth --seeds FILE ...`: synthesize verified SFT data without a recipe or run directory.

  infir synth --seeds data/gsm8k/train.jsonl --answer-field answer --answer-format gsm8k \\
      --teacher-url http://127.0.0.1:8000/v1 --model Qwen/Qwen2.5-32B-Instruct --api-key-env TEACHER_KEY \\
      --n 4 --concurrency 64 --output out/synth  generation.temperature=0.8 evolve.rounds=0

Writes OUTPUT/sft.jsonl (SFT `messages`), OUTPUT/summary.json (counts per step and reason),
OUTPUT/config.yaml (the resolved `synth` section: names of key variables, never keys) and
OUTPUT/details/. The request cache is OUTPUT/cache/synth-requests.sqlite, so running the same command
again (or after a kill or Ctrl-C) sends only requests never answered. A teacher that stops answering is
given up on after `teacher.give_up_after` seconds without a successful reply (default 600; connect
timeout `teacher.connect_timeout` 10 s, read timeout `teacher.timeout` 180 s). `--config FILE` reads a
`synth:` section (a recipe or a bare section); `key=value` arguments override it. Without `--teacher-url`
the configured teacher answers (by default the tiny recipe's generated teacher).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import yaml
from pydantic import ValidationError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="infir synth",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("overrides", nargs="*", metavar="key=value", help="overrides of the synth section")
    p.add_argument("--seeds", action="append", default=[], metavar="FILE", help="seed JSONL (repeatable)")
    p.add_argument("--output", required=True, help="output folder")
    p.add_argument("--config", help="YAML holding a `synth:` section, or the section itself")
    p.add_argument("--teacher-url", help="OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1")
    p.add_argument("--model", help="the teacher's model name (served name, or a local path with --local)")
    p.add_argument("--local", action="store_true", help="run --model in-process with transformers")
    p.add_argument("--api-key-env", help="NAME of the environment variable holding the API key")
    p.add_argument("--concurrency", type=int, help="requests in flight")
    p.add_argument("--requests-per-second", type=float, help="rate limit")
    p.add_argument("--n", type=int, help="candidate answers per prompt")
    p.add_argument("--prompt-field", default="question")
    p.add_argument("--answer-field", help="field holding the reference answer (else majority vote)")
    p.add_argument("--answer-format", choices=["plain", "gsm8k", "boxed"], default="plain")
    p.add_argument("--domain", choices=["math", "code", "general"], default="math")
    p.add_argument("--task", help="registry task that verifies (the record is its document), e.g. mbpp")
    p.add_argument("--limit", type=int, help="seeds per file")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def resolve_config(args: argparse.Namespace):
    from infir.recipe_text import apply_override, parse_override
    from infir.synth.config import SynthConfig

    tree: dict = {}
    if args.config:
        loaded = yaml.safe_load(Path(args.config).read_text()) or {}
        tree = loaded.get("synth", loaded) if isinstance(loaded, dict) else {}
    if args.seeds:
        tree["seeds"] = [
            {
                "type": "jsonl",
                "path": path,
                "name": Path(path).stem,
                "prompt_field": args.prompt_field,
                "answer_field": args.answer_field,
                "answer_format": args.answer_format,
                "domain": args.domain,
                "task": args.task,
                "limit": args.limit,
            }
            for path in args.seeds
        ]
    teacher = dict(tree.get("teacher") or {})
    if args.teacher_url:
        teacher.update({"type": "openai", "base_url": args.teacher_url})
    if args.local:
        teacher["type"] = "local"
    for key, value in (
        ("model", args.model),
        ("api_key_env", args.api_key_env),
        ("concurrency", args.concurrency),
        ("requests_per_second", args.requests_per_second),
    ):
        if value is not None:
            teacher[key] = value
    tree["teacher"] = teacher
    if args.n is not None:
        tree.setdefault("generation", {})["n"] = args.n
    for item in args.overrides:
        keys, value = parse_override(item)
        apply_override(tree, keys, value)
    return SynthConfig.model_validate(tree)


def describe_errors(exc: ValidationError) -> str:
    """pydantic's own text repeats every input; a refused secret must not be, so inputs are left out."""
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "synth"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


def main(argv: list[str] | None = None) -> int:
    from infir.run import atomic_write_text, write_json
    from infir.synth.pipeline import synthesize

    args = build_parser().parse_intermixed_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    try:
        cfg = resolve_config(args)
    except ValidationError as exc:
        print(f"infir synth: invalid configuration: {describe_errors(exc)}", file=sys.stderr)
        return 2
    except (OSError, yaml.YAMLError, ValueError) as exc:
        print(f"infir synth: {exc}", file=sys.stderr)
        return 2
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "config.yaml", yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    from infir.eval.loading import DataError
    from infir.synth.http import HttpError, SecretError

    t0 = time.time()
    try:
        summary = synthesize(cfg, out, show_progress=not args.quiet)
    except (DataError, SecretError, HttpError, FileNotFoundError) as exc:
        print(f"infir synth: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        cache = Path(cfg.cache_path) if cfg.cache_path else out / "cache" / "synth-requests.sqlite"
        print(f"infir synth: stopped; every reply received so far is kept in {cache}", file=sys.stderr)
        raise
    write_json(out / "summary.json", summary)
    print(
        json.dumps(
            {
                "examples": summary["examples"],
                "output": str(out / "sft.jsonl"),
                "seconds": round(time.time() - t0, 2),
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
