"""`infir curate --input PATH... --output DIR [--recipe FILE] [--executor local|ray] [--workers N]`.

With `--recipe`, the `curate:` section of that YAML file is the config; `--input` paths then
replace its sources (JSONL, Parquet or WARC by extension, globs and fsspec URLs allowed).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import yaml

from infir.curate.config import CurateConfig, SourceConfig
from infir.curate.readers.sources import CurateInputError


def source_for(path: str) -> SourceConfig:
    name = path.lower().removesuffix(".gz").removesuffix(".zst")
    if name.endswith(".parquet"):
        kind = "parquet"
    elif name.endswith((".warc", ".arc")):
        kind = "warc"
    else:
        kind = "jsonl"
    return SourceConfig(type=kind, paths=[path])


class UsageError(ValueError):
    """A bad argument or recipe: one line, exit status 2."""


def load_config(recipe: str | None) -> tuple[CurateConfig, int]:
    if not recipe:
        return CurateConfig(), 0
    from pydantic import ValidationError

    from infir.recipe_text import RecipeError, read_recipe_text, yaml_problem

    try:
        data = yaml.safe_load(read_recipe_text(Path(recipe))) or {}
    except RecipeError as exc:
        raise UsageError(str(exc)) from None
    except yaml.YAMLError as exc:
        raise UsageError(f"--recipe {recipe}: not valid YAML{yaml_problem(exc)}") from None
    if not isinstance(data, dict) or not isinstance(data.get("curate") or {}, dict):
        raise UsageError(f"--recipe {recipe}: expected a mapping with a `curate:` section")
    try:
        return CurateConfig.model_validate(data.get("curate") or {}), int(data.get("seed", 0))
    except ValidationError as exc:
        problems = "; ".join(f"curate.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise UsageError(f"--recipe {recipe}: invalid curate section: {problems}") from None
    except (TypeError, ValueError):
        raise UsageError(f"--recipe {recipe}: seed must be an integer") from None


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="infir curate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", nargs="+", default=[], help="input files (jsonl[.gz], parquet, warc[.gz])")
    parser.add_argument("--output", required=True, help="output directory")
    parser.add_argument("--recipe", help="YAML recipe whose `curate:` section configures the run")
    parser.add_argument("--executor", choices=["local", "ray"])
    parser.add_argument("--workers", type=positive_int, help="worker processes (>= 1)")
    parser.add_argument("--seed", type=int)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        cfg, seed = load_config(args.recipe)
    except UsageError as e:
        print(f"infir curate: error: {e}", file=sys.stderr)
        return 2
    try:
        updates = {}
        if args.input:
            updates["sources"] = [source_for(p) for p in args.input]
        if args.executor:
            updates["executor"] = args.executor
        if args.workers is not None:
            updates["workers"] = args.workers
        cfg = CurateConfig.model_validate(
            {**cfg.model_dump(), **{k: v for k, v in updates.items() if k != "sources"}}
            | ({"sources": [s.model_dump() for s in updates["sources"]]} if "sources" in updates else {})
        )
        from infir.curate.pipeline import locations, run_curate
        from infir.lock import LockError, acquire

        from infir.curate.workfolder import lock_folder

        folder, _, work = locations(cfg, args.output)
        try:
            # One curate per output folder: two would overwrite each other's shards and summary. An
            # output on a remote filesystem is locked through its work folder (see `lock_folder`).
            lock = acquire(folder.path if folder.is_local() else lock_folder(work))
        except LockError as e:
            print(f"infir curate: error: {e}", file=sys.stderr)
            return 2
        with lock:
            summary = run_curate(cfg, args.output, seed=args.seed if args.seed is not None else seed)
    except (CurateInputError, FileNotFoundError, ValueError, OSError, RuntimeError) as e:
        print(f"infir curate: error: {e}", file=sys.stderr)
        return 1
    print(json.dumps(summary["totals"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
