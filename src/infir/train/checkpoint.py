"""Checkpoints: sharded training state for resume, Hugging Face folders for what a stage hands on.

A resume checkpoint `<stage>/checkpoints/step-00000100/` holds
  state/               model and optimizer through `torch.distributed.checkpoint` (DCP): each rank
                       writes its own shard, no rank gathers the whole optimizer, and a load reshards
                       to whatever world size the resumed run has (1 -> N, N -> 1, N -> M)
  training_state.pt    step, tokens seen, data-loader position, every rank's RNG state, the config
  config.json          the model's config (what the weights are)
  checksums.json       xxh3-128 of every file above, written last

A stage's final model (`<stage>/final/`) is a Hugging Face folder (`AutoModelForCausalLM` loads it)
with the same `checksums.json`. Folders are written under a temporary name and renamed into place, so
a kill during a save leaves the previous checkpoint as the newest; a damaged one (a file changed,
truncated or missing) fails its checksum: a resume falls back to the newest good step and says which
file was bad, and a stage reading a damaged `final/` stops naming the file.
"""

from __future__ import annotations

import contextlib
import errno
import os
import random
import re
import shutil
import warnings
from pathlib import Path

import numpy as np
import torch

from infir.integrity import MANIFEST, CorruptCheckpoint, verify, write_manifest

STATE_FILE = "training_state.pt"
SHARDS = "state"
_STEP_DIR = re.compile(r"^step-(\d{8})$")


def rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# -- folders -----------------------------------------------------------------------------------------
def checkpoint_dirs(root: Path) -> list[tuple[int, Path]]:
    if not root.exists():
        return []
    found = []
    for path in root.iterdir():
        m = _STEP_DIR.match(path.name)
        if m and (path / MANIFEST).exists():
            found.append((int(m.group(1)), path))
    return sorted(found)


def latest_good_checkpoint(root: Path, log=print) -> Path | None:
    """The newest step folder whose files match their checksums; damaged ones are named and skipped."""
    for _, path in reversed(checkpoint_dirs(root)):
        try:
            verify(path)
            return path
        except CorruptCheckpoint as exc:
            log(f"skipping damaged checkpoint: {exc}")
    return None


def save_hf(model, tokenizer, out_dir: Path, state_dict: dict | None = None) -> None:
    """Save model (+ tokenizer) so AutoModelForCausalLM/AutoTokenizer load it from `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, state_dict=state_dict, safe_serialization=True)
    if tokenizer is not None:
        tokenizer.save_pretrained(out_dir)
    gen = getattr(model, "generation_config", None)
    if gen is not None:
        gen.save_pretrained(out_dir)


def atomic_dir(final: Path, tag: str | None = None) -> Path:
    tmp = final.with_name(f".{final.name}.tmp-{tag or os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    return tmp


def commit_dir(tmp: Path, final: Path) -> None:
    if final.exists() or final.is_symlink():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)


def no_space_error(exc: BaseException, path: Path) -> OSError | None:
    """An OSError naming `path` when `exc` came from a full disk: ENOSPC anywhere in its chain, or the
    words torch's writers use for it ('unexpected pos' from the zip writer; DCP wraps it in a
    CheckpointException whose text carries the rank's traceback)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            break
        if any(
            words in str(exc) for words in ("No space left on device", "unexpected pos", "file write failed")
        ):
            break
        exc = exc.__cause__ or exc.__context__
    else:
        return None
    return OSError(errno.ENOSPC, f"no space left on device while writing {path}")


def _prune(root: Path, keep_last: int) -> None:
    for _, old in checkpoint_dirs(root)[:-keep_last] if keep_last > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    for stale in root.glob(".step-*.tmp-*"):  # left by a killed save
        shutil.rmtree(stale, ignore_errors=True)


def save_checkpoint(
    root: Path, step: int, model, optimizer, training_state: dict, keep_last: int, info
) -> Path:
    """Every rank calls it: each writes its shard of the model and optimizer; rank 0 the rest."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.api import CheckpointException
    from torch.distributed.checkpoint.state_dict import get_state_dict

    from infir.train.parallel import barrier

    final = root / f"step-{step:08d}"
    tmp = final.with_name(f".{final.name}.tmp-save")  # one name every rank agrees on
    if info.is_main:
        root.mkdir(parents=True, exist_ok=True)
        if tmp.exists():
            shutil.rmtree(tmp)
    barrier(info)
    try:
        model_sd, optim_sd = get_state_dict(model, optimizer)
        with _single_process_quiet():
            # no_dist: a stage running on one rank of a torchrun job saves alone, without the others.
            dcp.save(
                {"model": model_sd, "optim": optim_sd},
                checkpoint_id=str(tmp / SHARDS),
                no_dist=not info.distributed,
            )
        if info.is_main:
            torch.save(training_state, tmp / STATE_FILE)
            _unwrapped_config(model).to_json_file(tmp / "config.json")
            write_manifest(tmp)
            commit_dir(tmp, final)
            _prune(root, keep_last)
    except (Exception, CheckpointException) as exc:  # CheckpointException is a BaseException
        full = no_space_error(exc, tmp)
        if full is not None:
            shutil.rmtree(tmp, ignore_errors=True)
            raise full from None
        raise
    barrier(info)
    return final


def load_checkpoint(path: Path, model, optimizer, info) -> dict:
    """Load the sharded model and optimizer state into this run's (possibly differently sharded)
    model and optimizer; returns the training state."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict, set_state_dict

    model_sd, optim_sd = get_state_dict(model, optimizer)
    # get_state_dict gives every trainable parameter optimizer state (a zero-gradient step); a parameter
    # that had none when saved (it never received a gradient, e.g. a vision tower's unused last norm)
    # must have none again, or its first real update would count one step too many.
    saved = set(dcp.FileSystemReader(str(path / SHARDS)).read_metadata().state_dict_metadata)
    stateless = [
        fqn
        for fqn, entries in optim_sd["state"].items()
        if not any(f"optim.state.{fqn}.{key}" in saved for key in entries)
    ]
    for fqn in stateless:
        del optim_sd["state"][fqn]
    state = {"model": model_sd, "optim": optim_sd}
    with _single_process_quiet():
        dcp.load(state, checkpoint_id=str(path / SHARDS), no_dist=not info.distributed)
    set_state_dict(
        model,
        optimizer,
        model_state_dict=state["model"],
        optim_state_dict=state["optim"],
        options=StateDictOptions(strict=not stateless),
    )
    if stateless:
        params = {name.replace("_orig_mod.", ""): p for name, p in model.named_parameters()}
        for fqn in stateless:
            optimizer.state.pop(params[fqn], None)
    return torch.load(path / STATE_FILE, map_location="cpu", weights_only=False)


@contextlib.contextmanager
def _single_process_quiet():
    """DCP warns that it assumes one process when there is no process group: that is the intent here."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=".*assuming the intent is to (save|load) in a single process"
        )
        yield


def _unwrapped_config(model):
    inner = getattr(model, "_orig_mod", model)  # torch.compile's wrapper
    return inner.config
