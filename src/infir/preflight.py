"""`infir run RECIPE --check`: every external input a recipe needs, and which ones this machine cannot reach,
before any compute is spent.

It reads the resolved recipe of the stages it will run and lists: local files and folders (corpora, seed
and label files, fastText models, benchmark data), Hugging Face datasets and models by name (found in the
local cache, or the hub reachable), OpenAI-compatible endpoints (a TCP connection, and whether the key's
environment variable is set — never its value), the Ray cluster, the run directory's filesystem (writable,
free space) and the GPUs a CUDA recipe expects. Nothing is downloaded.
"""

from __future__ import annotations

import functools
import glob
import os
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlparse

from infir.stages import is_checkpoint_stage

# Keys whose string values name something outside the run: a local path, a URL or a hub name.
PATH_KEYS = {"path", "paths", "model_path", "labels_path", "data_path"}
MODEL_KEYS = {"name_or_path", "path_or_name", "language_model", "vision_tower"}


@dataclass(frozen=True)
class Input:
    stage: str
    kind: str  # file, dataset, model, endpoint, ray, filesystem, gpu
    what: str
    ok: bool
    detail: str


def report(recipe, run_dir: Path, stages: list[str]) -> int:
    """Print the inputs as a table; the exit status is 1 when any is missing or unreachable."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    found = check(recipe, run_dir, stages)
    table = Table(title=f"inputs of {recipe.name} ({', '.join(stages)})")
    for col in ("", "stage", "kind", "input", "status"):
        table.add_column(col, overflow="fold")
    for item in found:
        mark = "[green]ok[/green]" if item.ok else "[red]missing[/red]"
        table.add_row(mark, item.stage, item.kind, escape(item.what), escape(item.detail))
    Console().print(table)
    missing = [item for item in found if not item.ok]
    print(f"{len(found)} inputs, {len(missing)} missing or unreachable")
    return 1 if missing else 0


def check(recipe, run_dir: Path, stages: list[str] | None = None) -> list[Input]:
    stages = stages or list(recipe.stages)
    found: list[Input] = []
    seen: set[tuple[str, str]] = set()

    def add(item: Input) -> None:
        if (item.kind, item.what) not in seen:
            seen.add((item.kind, item.what))
            found.append(item)

    # Files an earlier stage of this run makes (the inputs stage's seeds and labels) are no external input.
    made = set(recipe.inputs.outputs()) if "inputs" in stages else set()
    for stage in stages:
        section = getattr(recipe, stage, None)
        if section is None or not hasattr(section, "model_dump"):
            continue
        dump = section.model_dump(mode="json")
        for item in _walk_inputs(stage, dump):
            if not (item.kind == "file" and item.what in made):
                add(item)
        for item in _stage_specific(stage, section, dump):
            add(item)
    if any(s in stages for s in ("tokenize", "pretrain", "sft", "vl")):
        for key, value in (
            ("model", recipe.model.name_or_path),
            ("tokenizer", recipe.tokenizer.path_or_name),
        ):
            if value:
                add(_model(key, value))
    add(_run_dir(run_dir))
    if recipe.runtime.device == "cuda":
        add(_gpus())
    return found


def _walk_inputs(stage: str, node: Any, key: str = "") -> Iterator[Input]:
    if isinstance(node, dict):
        if node.get("type") == "hf" and node.get("name"):
            yield _dataset(stage, node["name"], node.get("subset"))
        if isinstance(node.get("base_url"), str):
            yield _endpoint(stage, node["base_url"], node.get("api_key_env"))
        if (
            node.get("type") == "local"
            and isinstance(node.get("model"), str)
            and not is_checkpoint_stage(node["model"])
        ):
            yield _model(stage, node["model"])
        for k, v in node.items():
            yield from _walk_inputs(stage, v, k)
    elif isinstance(node, list):
        for v in node:
            yield from _walk_inputs(stage, v, key)
    elif isinstance(node, str) and node:
        if key in PATH_KEYS:
            yield _path(stage, node, hub_kind="dataset" if key == "data_path" else None)
        elif key in MODEL_KEYS and not is_checkpoint_stage(node) and node not in ("auto",):
            yield _model(stage, node)


def _stage_specific(stage: str, section, dump: dict) -> Iterator[Input]:
    if stage == "curate" and dump.get("executor") == "ray":
        yield _ray()
    if stage == "curate" and section.decontam.enabled:
        from infir.eval.registry import task_names

        for name in section.decontam.tasks or task_names():
            yield from _task_data(stage, name, section.decontam.data_paths.get(name))
    if stage == "inputs":
        for _, spec in section.specs():
            yield from (_dataset(stage, src.name, src.subset) for src in spec.sources if src.name)
    if stage == "eval":
        for spec in section.tasks:
            yield from _task_data(stage, spec.name, spec.data_path, spec)
    if stage == "rl" and section.prompts.source == "task":
        yield from _task_data(stage, section.task, section.task_options.get("data_path"))


def _task_data(stage: str, name: str, data_path: str | None, spec=None) -> Iterator[Input]:
    """Where a benchmark task reads its records: a local path, a packaged file, or a hub dataset."""
    from infir.eval.loading import DataError
    from infir.eval.registry import get_task

    task = get_task(name, data_path=data_path) if spec is None else _built(spec)
    try:
        source = task.source
    except DataError:
        return
    if source.startswith("generated:"):
        return  # generated on the fly: nothing to fetch
    if os.path.exists(source):
        yield Input(stage, "dataset", f"{name}: {source}", True, "local")
    else:
        found = _dataset(stage, source, getattr(task, "hf_config", None))
        yield Input(stage, "dataset", f"{name}: {found.what}", found.ok, found.detail)


def _built(spec):
    from infir.eval.runner import build_task

    return build_task(spec)


def _path(stage: str, value: str, hub_kind: str | None = None) -> Input:
    scheme = urlparse(value).scheme
    if scheme and len(scheme) > 1 and scheme != "file":
        return _remote(stage, value)
    matches = (
        glob.glob(value) if any(c in value for c in "*?[") else ([value] if os.path.exists(value) else [])
    )
    if matches:
        return Input(stage, "file", value, True, f"{len(matches)} path(s)" if len(matches) > 1 else "present")
    if hub_kind == "dataset" and "/" in value and not value.startswith((".", "/")):
        return _dataset(stage, value, None)
    return Input(stage, "file", value, False, "not found")


def _remote(stage: str, url: str) -> Input:
    try:
        import fsspec

        fs, path = fsspec.core.url_to_fs(url)
        ok = bool(fs.glob(path)) if any(c in path for c in "*?[") else fs.exists(path)
        return Input(stage, "file", url, ok, "present" if ok else "not found")
    except Exception as exc:  # a missing filesystem driver or credentials: say which
        return Input(stage, "file", url, False, f"cannot check: {type(exc).__name__}: {exc}")


@functools.cache
def _hub_reachable() -> tuple[bool, str]:
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        return False, "HF_HUB_OFFLINE=1"
    from huggingface_hub import constants

    host = urlparse(constants.ENDPOINT).hostname or ""
    try:
        socket.create_connection((host, 443), timeout=3).close()
        return True, ""
    except OSError as exc:
        return False, f"the hub ({host}) is unreachable: {exc.strerror or exc}"


def _dataset(stage: str, name: str, subset: str | None) -> Input:
    what = f"{name}" + (f" ({subset})" if subset else "")
    if os.path.exists(name):
        return Input(stage, "dataset", what, True, "local folder")
    from huggingface_hub import constants

    cached = Path(constants.HF_HUB_CACHE) / f"datasets--{name.replace('/', '--')}"
    if cached.is_dir():
        return Input(stage, "dataset", what, True, "in the local Hugging Face cache")
    ok, why = _hub_reachable()
    return Input(
        stage,
        "dataset",
        what,
        ok,
        "on the hub (streamed or downloaded at run time)" if ok else f"not cached here; {why}",
    )


def _model(stage: str, name: str) -> Input:
    if os.path.exists(name):
        has_config = (
            os.path.isfile(os.path.join(name, "config.json"))
            or os.path.isfile(os.path.join(name, "tokenizer.json"))
            or os.path.isfile(name)
        )
        return Input(
            stage, "model", name, has_config, "local" if has_config else "a folder without config.json"
        )
    from huggingface_hub import try_to_load_from_cache

    hit = try_to_load_from_cache(name, "config.json")
    if isinstance(hit, str):
        return Input(stage, "model", name, True, "in the local Hugging Face cache")
    ok, why = _hub_reachable()
    return Input(
        stage,
        "model",
        name,
        ok,
        "on the hub (downloaded at run time; gated models need HF_TOKEN)"
        if ok
        else f"not cached here; {why}",
    )


def _endpoint(stage: str, url: str, key_env: str | None) -> Input:
    parsed = urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        socket.create_connection((parsed.hostname, port), timeout=3).close()
        reachable, detail = True, "accepts connections"
    except OSError as exc:
        reachable, detail = False, f"no connection: {exc.strerror or exc}"
    if key_env:
        has_key = bool(os.environ.get(key_env))
        detail += f"; key variable {key_env} is {'set' if has_key else 'NOT set'}"
        reachable = reachable and has_key
    return Input(stage, "endpoint", url, reachable, detail)


def _ray() -> Input:
    address = os.environ.get("RAY_ADDRESS")
    if not address:
        return Input(
            "curate",
            "ray",
            "local cluster",
            True,
            "RAY_ADDRESS unset: a local Ray instance starts on this "
            "machine (set RAY_ADDRESS to use a cluster)",
        )
    target = urlparse(address if "://" in address else f"ray://{address}")
    try:
        socket.create_connection((target.hostname, target.port or 10001), timeout=3).close()
        return Input("curate", "ray", address, True, "accepts connections")
    except OSError as exc:
        return Input("curate", "ray", address, False, f"no connection: {exc.strerror or exc}")


def _run_dir(run_dir: Path) -> Input:
    probe = run_dir
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    if not probe.is_dir():
        return Input("run", "filesystem", str(run_dir), False, f"{probe} is not a directory")
    writable = os.access(probe, os.W_OK)
    free = shutil.disk_usage(probe).free / 2**30
    return Input(
        "run",
        "filesystem",
        str(run_dir),
        writable,
        f"{'writable' if writable else 'NOT writable'}; {free:.1f} GiB free",
    )


def _gpus() -> Input:
    import torch

    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    names = sorted({torch.cuda.get_device_name(i) for i in range(n)})
    return Input(
        "run",
        "gpu",
        "CUDA devices",
        n > 0,
        f"{n} visible" + (f" ({', '.join(names)})" if names else "; runtime.device is cuda"),
    )
