"""Checkpoints: the model in Hugging Face format plus the full training state, written atomically.

`<stage>/checkpoints/step-00000100/` holds `config.json`, `model.safetensors`, the tokenizer files and
`training_state.pt` (optimizer, RNG states, data-loader position, step, tokens seen). The folder is
written under a temporary name and renamed into place, so a kill during a save leaves the previous
checkpoint as the newest usable one.
"""

from __future__ import annotations

import os
import random
import re
import shutil
from pathlib import Path

import numpy as np
import torch

STATE_FILE = "training_state.pt"
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


def checkpoint_dirs(root: Path) -> list[tuple[int, Path]]:
    if not root.exists():
        return []
    found = []
    for path in root.iterdir():
        m = _STEP_DIR.match(path.name)
        if m and (path / STATE_FILE).exists():
            found.append((int(m.group(1)), path))
    return sorted(found)


def latest_checkpoint(root: Path) -> Path | None:
    found = checkpoint_dirs(root)
    return found[-1][1] if found else None


def save_hf(model, tokenizer, out_dir: Path, state_dict: dict | None = None) -> None:
    """Save model (+ tokenizer) so AutoModelForCausalLM/AutoTokenizer load it from `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, state_dict=state_dict, safe_serialization=True)
    if tokenizer is not None:
        tokenizer.save_pretrained(out_dir)
    gen = getattr(model, "generation_config", None)
    if gen is not None:
        gen.save_pretrained(out_dir)


def atomic_dir(final: Path) -> Path:
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    return tmp


def commit_dir(tmp: Path, final: Path) -> None:
    if final.exists():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)


def save_checkpoint(root: Path, step: int, model, tokenizer, training_state: dict, keep_last: int,
                    model_state_dict: dict | None = None) -> Path:
    final = root / f"step-{step:08d}"
    tmp = atomic_dir(final)
    save_hf(model, tokenizer, tmp, model_state_dict)
    torch.save(training_state, tmp / STATE_FILE)
    commit_dir(tmp, final)
    for _, old in checkpoint_dirs(root)[:-keep_last]:
        shutil.rmtree(old, ignore_errors=True)
    for stale in root.glob(".step-*.tmp-*"):  # left by a killed save
        shutil.rmtree(stale, ignore_errors=True)
    return final


def load_training_state(ckpt: Path) -> dict:
    return torch.load(ckpt / STATE_FILE, map_location="cpu", weights_only=False)
