"""Run directory: per-stage resolved config, summary, metrics and completion markers.

Layout of `<run-dir>/<stage>/`:
  config.yaml    the resolved config the stage ran with (secrets never written)
  summary.json   the stage's key results
  metrics.jsonl  one line per logged step (training stages)
  _STARTED       the fingerprint of the work under way: a killed stage resumes only the same work
  _COMPLETE      marker holding the stage fingerprint; written last, atomically

A stage is skipped when its marker holds the fingerprint it would have now: a hash of
its config sections and of the fingerprints of the stages it reads. A stage killed
halfway has no marker, so a rerun starts it again: stages that can resume (training,
curation shards) pick up their own partial state, the others start from an empty dir.

Under torchrun every rank runs the stage list. Rank 0 alone decides what to skip, prepares and marks
the stage directory and writes summaries; a stage with `all_ranks` (training) runs on every rank, any
other stage runs on rank 0 alone (`Ranks.alone`: it sees one process) while the others wait for it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ContextManager

import yaml

if TYPE_CHECKING:
    from infir.config import Recipe

MARKER = "_COMPLETE"
STARTED = "_STARTED"
FINAL = "final"  # a training stage's model, a Hugging Face folder: <run-dir>/<stage>/final


def atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        # A truncated or corrupted run-dir file must name itself: "Expecting value" alone says nothing.
        raise ValueError(
            f"{path} is corrupt (not JSON: {exc}); delete it or rerun its stage with --force"
        ) from None


@dataclass
class Stage:
    """A pipeline stage: which config sections it reads, which stages it needs, what it runs."""

    name: str
    sections: tuple[str, ...]
    # Upstream stages whose outputs this one reads; a function when it depends on the recipe
    # (SFT starts from whichever training stage precedes it).
    needs: tuple[str, ...] | Callable[["Recipe"], tuple[str, ...]]
    fn: Callable[["StageContext"], dict]
    resumable: bool = False  # keeps partial outputs of a killed run instead of wiping them
    help: str = ""
    # Local input files outside the run dir (raw corpora, seed files): their size and mtime join the
    # fingerprint, so an edited input reruns the stage.
    input_files: Callable[["Recipe"], list[str]] | None = None
    # Sub-paths that survive a rerun (caches keyed by their own content, e.g. eval results per checkpoint).
    keep: tuple[str, ...] = ()
    # Runs on every rank under torchrun (sharded training); other stages run on rank 0 alone.
    all_ranks: bool = False
    # Trains a model and leaves it in <run-dir>/<stage>/final (FINAL): a checkpoint later stages start from,
    # eval evaluates (text models) and export converts. `modality`: "text" (a causal LM) or "image" (LLaVA).
    checkpoint: bool = False
    modality: str = "text"
    chat: bool = False  # its model answers chat prompts: eval's and export's default prompt form
    # Where its weights start: the recipe field (`section.field`) naming a checkpoint stage of this run, a
    # path or Hub name, or `auto`: the first of `starts_from` the recipe runs (nearest first).
    start_field: str | None = None
    starts_from: tuple[str, ...] = ()
    default_start: str | None = None  # what an unset start field means

    def upstream(self, recipe: "Recipe") -> tuple[str, ...]:
        return self.needs(recipe) if callable(self.needs) else self.needs


def _identity(value: Any) -> Any:
    return value


@dataclass(frozen=True)
class Ranks:
    """The ranks of one job running a stage list: this process's rank, their number, how rank 0's value
    reaches the others (`share` blocks until rank 0 gets there), and the context a rank-0-only stage
    runs in."""

    rank: int = 0
    world: int = 1
    share: Callable[[Any], Any] = _identity
    alone: Callable[[], ContextManager] = contextlib.nullcontext

    @property
    def is_main(self) -> bool:
        return self.rank == 0


class StageFailed(RuntimeError):
    """Raised on the ranks that waited for a stage that failed on rank 0."""


@dataclass
class StageContext:
    recipe: "Recipe"
    run_dir: Path
    stage: Stage
    force: bool = False
    extras: dict = field(default_factory=dict)

    @property
    def stage_dir(self) -> Path:
        return self.run_dir / self.stage.name

    def output_of(self, stage_name: str) -> Path:
        """Output directory of an upstream stage; fails clearly when it has not run."""
        path = self.run_dir / stage_name
        if not (path / MARKER).exists():
            raise FileNotFoundError(
                f"stage {self.stage.name!r} needs the output of {stage_name!r}, which has not completed in "
                f"{self.run_dir} (run `infir {stage_name}` or `infir run` first)"
            )
        return path

    def checkpoint_of(self, stage_name: str) -> Path:
        """The final model a completed checkpoint stage left, checked against its checksums."""
        from infir.integrity import verify

        path = self.output_of(stage_name) / FINAL
        if not path.is_dir():
            raise FileNotFoundError(f"stage {stage_name!r} completed but left no model in {path}")
        verify(path)
        return path

    def has_output(self, stage_name: str) -> bool:
        return (self.run_dir / stage_name / MARKER).exists()

    def has_checkpoint(self, stage_name: str) -> bool:
        """Whether a completed stage left a model in `<stage>/final` (checked, when read, by checkpoint_of)."""
        return self.has_output(stage_name) and (self.run_dir / stage_name / FINAL).is_dir()

    def metrics_logger(self) -> "MetricsLog":
        return MetricsLog(self.stage_dir / "metrics.jsonl")


class MetricsLog:
    """Append-only JSONL; a resumed run truncates lines past its restart step."""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)

    def truncate_after(self, step: int) -> None:
        if not self.path.exists():
            return
        kept = [
            line
            for line in self.path.read_text().splitlines()
            if line.strip() and json.loads(line).get("step", 0) <= step
        ]
        atomic_write_text(self.path, "".join(line + "\n" for line in kept))

    def log(self, record: dict) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")

    def read(self) -> list[dict]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]


def _section_dump(recipe: "Recipe", section: str) -> Any:
    value = getattr(recipe, section)
    return value.model_dump(mode="json") if hasattr(value, "model_dump") else value


def stage_config(recipe: "Recipe", stage: Stage) -> dict:
    return {s: _section_dump(recipe, s) for s in stage.sections}


def fingerprint(recipe: "Recipe", stage: Stage, run_dir: Path) -> str:
    upstream = {}
    for name in stage.upstream(recipe):
        marker = run_dir / name / MARKER
        upstream[name] = read_json(marker)["fingerprint"] if marker.exists() else None
    files = []
    for name in stage.input_files(recipe) if stage.input_files else []:
        path = Path(name)
        if path.is_file():
            st = path.stat()
            files.append([str(path), st.st_size, st.st_mtime_ns])
    payload = json.dumps(
        {"stage": stage.name, "config": stage_config(recipe, stage), "upstream": upstream, "files": files},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def is_complete(recipe: "Recipe", stage: Stage, run_dir: Path) -> bool:
    marker = run_dir / stage.name / MARKER
    if not marker.exists():
        return False
    return read_json(marker).get("fingerprint") == fingerprint(recipe, stage, run_dir)


def _wipe(stage_dir: Path, keep: tuple[str, ...]) -> None:
    for child in stage_dir.iterdir():
        if child.name in keep:
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def _drop_partial_writes(stage_dir: Path) -> None:
    # An atomic write killed before its rename leaves `.<name>.tmp-<pid>`; the resumed stage rewrites it.
    for stale in sorted(stage_dir.rglob(".*.tmp-*"), reverse=True):
        if stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)


def run_stage(
    recipe: "Recipe", stage: Stage, run_dir: Path, force: bool = False, log=print, ranks: Ranks = Ranks()
) -> dict:
    """Run one stage with the skip / rerun / resume contract above; returns its summary."""
    if ranks.world > 1 and not stage.all_ranks:
        outcome = None
        if ranks.is_main:
            try:
                with ranks.alone():
                    outcome = ("ok", _run_here(recipe, stage, run_dir, force, log))
            except BaseException as exc:
                ranks.share(("failed", f"{type(exc).__name__}: {exc}"))
                raise
        return _outcome(stage, ranks.share(outcome))
    plan = None
    if ranks.is_main:
        try:
            plan = _prepare(recipe, stage, run_dir, force, log)
        except BaseException as exc:
            ranks.share(("failed", f"{type(exc).__name__}: {exc}"))
            raise
    plan = _outcome(stage, ranks.share(plan))
    if plan["skip"]:
        return plan["summary"]
    summary = _execute(recipe, stage, run_dir, force)
    if ranks.is_main:
        _finish(stage, run_dir, summary, plan["fingerprint"])
    ranks.share(None)  # nobody moves on before the marker is written
    return summary


def _outcome(stage: Stage, outcome):
    if isinstance(outcome, tuple) and outcome[0] == "failed":
        raise StageFailed(f"stage {stage.name!r} failed on rank 0: {outcome[1]}")
    return outcome[1] if isinstance(outcome, tuple) else outcome


def _run_here(recipe: "Recipe", stage: Stage, run_dir: Path, force: bool, log) -> dict:
    plan = _prepare(recipe, stage, run_dir, force, log)
    if plan["skip"]:
        return plan["summary"]
    summary = _execute(recipe, stage, run_dir, force)
    _finish(stage, run_dir, summary, plan["fingerprint"])
    return summary


def _prepare(recipe: "Recipe", stage: Stage, run_dir: Path, force: bool, log) -> dict:
    """Skip a complete stage, or make its directory ready to (re)run or resume."""
    stage_dir = run_dir / stage.name
    if not force and is_complete(recipe, stage, run_dir):
        log(f"skipped {stage.name}: complete and unchanged ({stage_dir})")
        return {"skip": True, "summary": read_json(stage_dir / "summary.json")}
    marker, started = stage_dir / MARKER, stage_dir / STARTED
    current = fingerprint(recipe, stage, run_dir)
    # Partial outputs are reused only by a resumable stage resuming the very same work.
    same_work = started.exists() and read_json(started).get("fingerprint") == current
    if marker.exists():
        marker.unlink()
    if stage_dir.exists() and (force or not stage.resumable or not same_work):
        _wipe(stage_dir, stage.keep)
    elif stage_dir.exists():
        _drop_partial_writes(stage_dir)
    stage_dir.mkdir(parents=True, exist_ok=True)
    write_json(started, {"fingerprint": current, "started": time.time()})
    atomic_write_text(stage_dir / "config.yaml", yaml.safe_dump(stage_config(recipe, stage), sort_keys=False))
    return {"skip": False, "fingerprint": current}


def _execute(recipe: "Recipe", stage: Stage, run_dir: Path, force: bool) -> dict:
    ctx = StageContext(recipe=recipe, run_dir=run_dir, stage=stage, force=force)
    t0 = time.time()
    summary = dict(stage.fn(ctx) or {})
    summary.setdefault("seconds", round(time.time() - t0, 3))
    return summary


def _finish(stage: Stage, run_dir: Path, summary: dict, fingerprint_: str) -> None:
    stage_dir = run_dir / stage.name
    write_json(stage_dir / "summary.json", summary)
    write_json(stage_dir / MARKER, {"fingerprint": fingerprint_, "finished": time.time()})
