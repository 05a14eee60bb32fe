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
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from rich.console import Console

console = Console(stderr=True)

DIRECT_FORMS = {
    "curate": ("--input", "infir.curate.cli"),
    "eval": ("--model", "infir.eval.cli"),
    "synth": ("--seeds", "infir.synth.cli"),
    "export": ("--model", "infir.export.cli"),
}


def _stage_parser(prog: str, help_text: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=help_text)
    p.add_argument("args", nargs="*", metavar="RECIPE|key=value",
                   help="a recipe (YAML path or embedded name; default: tiny) and key=value overrides")
    p.add_argument("--run-dir", help="run directory (default: the recipe's run_dir, else runs/<name>)")
    p.add_argument("--force", action="store_true", help="rerun even if complete and unchanged")
    p.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    p.add_argument("--check", action="store_true",
                   help="list every external input (data, models, endpoints, Ray, filesystem, GPUs) and what is "
                        "missing, then exit (1 when something is)")
    return p


def _split_args(items: list[str]) -> tuple[str, list[str]]:
    recipe, overrides = None, []
    for item in items:
        if "=" in item:
            overrides.append(item)
        elif recipe is None:
            recipe = item
        else:
            raise SystemExit(f"infir: unexpected argument {item!r} (one recipe, then key=value overrides)")
    return recipe or "tiny", overrides


def _load(items: list[str]):
    from infir.config import RecipeError, load_recipe

    recipe_name, overrides = _split_args(items)
    try:
        return load_recipe(recipe_name, overrides)
    except RecipeError as exc:
        console.print(f"[red]error:[/red] {exc}", markup=True, highlight=False)
        raise SystemExit(2) from None


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
    return Ranks(rank=rank, world=world, share=lambda value: broadcast_from_main(value, info, group), alone=solo)


def _run_stages(recipe, names: list[str], run_dir: Path, force: bool) -> int:
    from infir.run import run_stage
    from infir.stages import STAGES

    unknown = [name for name in names if name not in STAGES]
    if unknown:
        console.print(f"[red]error:[/red] stage {unknown[0]!r} is not available in this version of infir")
        return 2
    _setup_runtime(recipe)
    ranks = _ranks(recipe)
    say = console.print if ranks.is_main else (lambda *a, **k: None)
    if ranks.is_main:
        from infir.config import dump_recipe
        from infir.run import atomic_write_text

        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run_dir / "recipe.yaml", dump_recipe(recipe))
    t0 = time.time()
    try:
        for name in names:
            if ranks.is_main:
                console.rule(f"[bold]{name}")
            t = time.time()
            summary = run_stage(recipe, STAGES[name], run_dir, force=force, log=say, ranks=ranks)
            say(f"{name}: done in {time.time() - t:.1f}s -> {run_dir / name}")
            if ranks.is_main:
                _print_highlights(name, summary)
    finally:
        if ranks.world > 1:
            from infir.train.parallel import shutdown

            shutdown()
    if not ranks.is_main:
        return 0
    console.rule()
    console.print(f"finished {len(names)} stage(s) in {time.time() - t0:.1f}s; run directory: {run_dir}"
                  + (f" ({ranks.world} ranks)" if ranks.world > 1 else ""))
    report = run_dir / "report" / "index.html"
    if report.exists():
        print(f"report: {report.resolve()}")
    return 0


def _print_highlights(name: str, summary: dict) -> None:
    keys = [k for k in ("docs_in", "docs_kept", "tokens", "steps", "loss", "val_loss", "tokens_per_s", "results",
                        "report") if k in summary]
    for k in keys:
        console.print(f"  {k}: {summary[k]}", highlight=False)


def _preflight(recipe, run_dir: Path, stages: list[str]) -> int:
    from rich.markup import escape
    from rich.table import Table

    from infir.preflight import check

    found = check(recipe, run_dir, stages)
    table = Table(title=f"inputs of {recipe.name} ({', '.join(stages)})", show_lines=False)
    for col in ("", "stage", "kind", "input", "status"):
        table.add_column(col, overflow="fold")
    for item in found:
        mark = "[green]ok[/green]" if item.ok else "[red]missing[/red]"
        table.add_row(mark, item.stage, item.kind, escape(item.what), escape(item.detail))
    Console().print(table)
    missing = [item for item in found if not item.ok]
    print(f"{len(found)} inputs, {len(missing)} missing or unreachable")
    return 1 if missing else 0


def cmd_run(argv: list[str]) -> int:
    args = _stage_parser("infir run", "run a recipe's stages in order").parse_intermixed_args(argv)
    recipe = _load(args.args)
    if args.check:
        return _preflight(recipe, recipe.resolved_run_dir(args.run_dir), list(recipe.stages))
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
        return _preflight(recipe, recipe.resolved_run_dir(args.run_dir), [name])
    if args.dry_run:
        import yaml

        from infir.run import stage_config

        print(yaml.safe_dump(stage_config(recipe, STAGES[name]), sort_keys=False))
        return 0
    return _run_stages(recipe, [name], recipe.resolved_run_dir(args.run_dir), args.force)


def cmd_report(argv: list[str]) -> int:
    positional = [a for a in argv if not a.startswith("-")]
    if len(positional) == 1 and "=" not in positional[0] and Path(positional[0]).is_dir():
        from infir.report.render import write_report

        path = write_report(Path(positional[0]))
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
    argv = list(sys.argv[1:] if argv is None else argv)
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
    console.print(f"[red]error:[/red] unknown command {cmd!r}; commands: {', '.join(commands)}")
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
