"""`infir` command line: the subcommand table and nothing else.

  infir run [RECIPE] [--run-dir DIR] [--force] [--dry-run] [key=value ...]
  infir <stage> [RECIPE] [--run-dir DIR] [--force] [--dry-run] [key=value ...]
  infir curate --input PATH... --output DIR ...         (direct form, no run dir)
  infir eval --model PATH --tasks a,b ... | infir eval score ...
  infir synth --seeds FILE --teacher-url URL --model NAME --output DIR ...
  infir export --model DIR --format gguf|hf|mmproj [--quant f16|q8_0|q4_0] --out PATH
  infir bench-edge --model FILE_OR_DIR [--model ...] [--task reasoning --limit N]
  infir report RUN_DIR
  infir recipes

RECIPE is a YAML path or the name of an embedded recipe; it defaults to `tiny`.
Errors are one line on stderr; `--debug` (anywhere on the line) prints the traceback as well. A failed
stage keeps its traceback in RUN_DIR/<stage>/error.log.
"""

from __future__ import annotations

import argparse
import errno
import os
import time
import traceback
from pathlib import Path

from infir import guards
from infir.guards import CliError, console, run_command, say, stage_failed

DIRECT_FORMS = {
    "curate": ("--input", "infir.curate.cli"),
    "eval": ("--model", "infir.eval.cli"),
    "synth": ("--seeds", "infir.synth.cli"),
    "export": ("--model", "infir.export.cli"),
}


def _stage_parser(prog: str, help_text: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=help_text)
    p.add_argument(
        "args",
        nargs="*",
        metavar="RECIPE|key=value",
        help="a recipe (YAML path or embedded name; default: tiny) and key=value overrides",
    )
    p.add_argument("--run-dir", help="run directory (default: the recipe's run_dir, else runs/<name>)")
    p.add_argument("--force", action="store_true", help="rerun even if complete and unchanged")
    p.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    p.add_argument(
        "--check",
        action="store_true",
        help="list every external input (data, models, endpoints, Ray, filesystem, GPUs) and what is "
        "missing, then exit (1 when something is)",
    )
    p.add_argument("--debug", action="store_true", help="print tracebacks of errors")
    return p


def _split_args(items: list[str]) -> tuple[str, list[str]]:
    recipe, overrides = None, []
    for item in items:
        if "=" in item:
            overrides.append(item)
        elif recipe is None:
            recipe = item
        else:
            raise CliError(f"unexpected argument {item!r} (one recipe, then key=value overrides)")
    return recipe or "tiny", overrides


def _load(items: list[str]):
    from infir.config import RecipeError, load_recipe

    recipe_name, overrides = _split_args(items)
    try:
        return load_recipe(recipe_name, overrides)
    except RecipeError as exc:
        raise CliError(str(exc)) from None


def _setup_runtime(recipe) -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    if recipe.runtime.threads:
        torch.set_num_threads(recipe.runtime.threads)


def _ranks(recipe):
    """This process's place in a torchrun job (one rank outside torchrun)."""
    from infir.run import Ranks
    from infir.train.parallel import launched_ranks

    rank, world = launched_ranks()
    if world <= 1:
        return Ranks()
    from infir.train.parallel import broadcast_from_main, coordination_group, init_distributed, solo

    info = init_distributed(recipe.runtime.device)
    group = coordination_group()
    return Ranks(
        rank=rank, world=world, share=lambda value: broadcast_from_main(value, info, group), alone=solo
    )


def _check_run_dir(run_dir: Path) -> None:
    if run_dir.exists() and not run_dir.is_dir():
        raise CliError(f"run directory {run_dir} exists and is not a directory")


def _lock_run_dir(run_dir: Path):
    from contextlib import nullcontext

    from infir.lock import LockError, acquire, is_primary_rank

    # Under torchrun the other ranks are part of rank 0's job: rank 0 holds the lock for all of them.
    if not is_primary_rank():
        return nullcontext()
    try:
        return acquire(run_dir)
    except LockError as exc:
        raise CliError(str(exc)) from None


def _run_stages(recipe, names: list[str], run_dir: Path, force: bool) -> int:
    from infir.stages import STAGES

    for name in names:
        if name not in STAGES:
            raise CliError(f"stage {name!r} is not available in this version of infir")
    _check_run_dir(run_dir)
    _setup_runtime(recipe)
    ranks = _ranks(recipe)
    if ranks.is_main:
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CliError(f"cannot create run directory {run_dir}: {exc.strerror or exc}") from None
    finished = False
    try:
        # Held by rank 0 until the stages are done (or the process dies, whichever comes first).
        with _lock_run_dir(run_dir):
            code = _run_locked(recipe, names, run_dir, force, ranks)
        finished = True
        return code
    finally:
        if ranks.world > 1:
            from infir.train.parallel import shutdown

            shutdown(synchronize=finished)


def _run_locked(recipe, names: list[str], run_dir: Path, force: bool, ranks) -> int:
    from infir.config import dump_recipe
    from infir.run import atomic_write_text, run_stage
    from infir.stages import STAGES

    log = say if ranks.is_main else (lambda *a, **k: None)
    if ranks.is_main:
        try:
            atomic_write_text(run_dir / "recipe.yaml", dump_recipe(recipe))
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise CliError(f"no space left on device: {run_dir}", 1) from None
            raise CliError(f"cannot write {run_dir / 'recipe.yaml'}: {exc.strerror or exc}", 1) from None
    t0 = time.time()
    for name in names:
        if ranks.is_main:
            console.rule(f"[bold]{name}")
        t = time.time()
        try:
            summary = run_stage(recipe, STAGES[name], run_dir, force=force, log=log, ranks=ranks)
        except Exception as exc:  # noqa: BLE001 - every stage failure becomes one line plus error.log
            if not ranks.is_main:  # rank 0 reports it and keeps the traceback
                raise CliError(f"stage {name!r} failed: {exc}", 1) from None
            raise stage_failed(name, run_dir / name, exc) from None
        if ranks.is_main:
            (run_dir / name / "error.log").unlink(missing_ok=True)  # a stale failure would mislead
            say(f"{name}: done in {time.time() - t:.1f}s -> {run_dir / name}")
            _print_highlights(name, summary)
    if not ranks.is_main:
        return 0
    console.rule()
    say(
        f"finished {len(names)} stage(s) in {time.time() - t0:.1f}s; run directory: {run_dir}"
        + (f" ({ranks.world} ranks)" if ranks.world > 1 else "")
    )
    report = run_dir / "report" / "index.html"
    if report.exists():
        print(f"report: {report.resolve()}")
    return 0


def _print_highlights(name: str, summary: dict) -> None:
    keys = [
        k
        for k in (
            "docs_in",
            "docs_kept",
            "tokens",
            "steps",
            "loss",
            "val_loss",
            "tokens_per_s",
            "results",
            "report",
        )
        if k in summary
    ]
    for k in keys:
        say(f"  {k}: {summary[k]}")


def cmd_run(argv: list[str]) -> int:
    args = _stage_parser("infir run", "run a recipe's stages in order").parse_intermixed_args(argv)
    recipe = _load(args.args)
    if args.check:
        from infir.preflight import report

        return report(recipe, recipe.resolved_run_dir(args.run_dir), list(recipe.stages))
    if args.dry_run:
        from infir.config import dump_recipe

        print(dump_recipe(recipe))
        return 0
    return _run_stages(recipe, list(recipe.stages), recipe.resolved_run_dir(args.run_dir), args.force)


def cmd_stage(name: str, argv: list[str]) -> int:
    from infir.stages import STAGES

    args = _stage_parser(f"infir {name}", STAGES[name].help).parse_intermixed_args(argv)
    recipe = _load(args.args)
    if args.check:
        from infir.preflight import report

        return report(recipe, recipe.resolved_run_dir(args.run_dir), [name])
    if args.dry_run:
        import yaml

        from infir.run import stage_config

        print(yaml.safe_dump(stage_config(recipe, STAGES[name]), sort_keys=False))
        return 0
    return _run_stages(recipe, [name], recipe.resolved_run_dir(args.run_dir), args.force)


def _looks_like_recipe(arg: str) -> bool:
    from infir.config import EMBEDDED_RECIPES

    return arg.endswith((".yaml", ".yml")) or (EMBEDDED_RECIPES / f"{arg}.yaml").is_file()


def cmd_report(argv: list[str]) -> int:
    positional = [a for a in argv if not a.startswith("-")]
    if (
        len(positional) == 1
        and "=" not in positional[0]
        and (Path(positional[0]).is_dir() or not _looks_like_recipe(positional[0]))
    ):
        # `infir report RUN_DIR`: a path that is not a recipe is a run directory, existing or not.
        run_dir = Path(positional[0])
        if not run_dir.exists():
            raise CliError(f"run directory {run_dir} does not exist")
        if not run_dir.is_dir():
            raise CliError(f"{run_dir} is not a run directory (not a directory)")
        from infir.report.render import write_report

        try:
            path = write_report(run_dir)
        except Exception as exc:  # noqa: BLE001 - one line naming what could not be read
            if guards.DEBUG:
                traceback.print_exception(exc)
            raise CliError(f"report of {run_dir} failed: {exc}", 1) from None
        print(f"report: {path.resolve()}")
        return 0
    return cmd_stage("report", argv)


def cmd_recipes(argv: list[str]) -> int:
    from infir.config import EMBEDDED_RECIPES

    for path in sorted(EMBEDDED_RECIPES.glob("*.yaml")):
        first = next((ln for ln in path.read_text().splitlines() if ln.startswith("description:")), "")
        print(f"{path.stem:16s} {first.removeprefix('description:').strip()}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_command(_dispatch, argv)


def _dispatch(argv: list[str]) -> int:
    from infir.stages import STAGES

    commands = ["run", *STAGES, "bench-edge", "recipes"]
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        print("\nstages: " + ", ".join(f"{n} ({s.help})" for n, s in STAGES.items()))
        return 0 if argv else 2
    cmd, rest = argv[0], argv[1:]
    if cmd in DIRECT_FORMS and (DIRECT_FORMS[cmd][0] in rest or (cmd == "eval" and rest[:1] == ["score"])):
        import importlib

        return importlib.import_module(DIRECT_FORMS[cmd][1]).main(rest)
    if cmd == "bench-edge":
        import importlib

        return importlib.import_module("infir.export.cli").main(["bench-edge", *rest])
    if cmd == "run":
        return cmd_run(rest)
    if cmd == "report":
        return cmd_report(rest)
    if cmd == "recipes":
        return cmd_recipes(rest)
    if cmd in STAGES:
        return cmd_stage(cmd, rest)
    raise CliError(f"unknown command {cmd!r}; commands: {', '.join(commands)}")


if __name__ == "__main__":
    raise SystemExit(main())
