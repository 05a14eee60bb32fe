"""Shared fixtures. `shared` is the read-only data folder beside the checkout (../shared)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_dir() -> Path | None:
    path = Path(os.environ.get("INFIR_SHARED", REPO.parent / "shared"))
    return path if path.is_dir() else None


@pytest.fixture(scope="session")
def shared() -> Path:
    path = shared_dir()
    if path is None:
        pytest.skip(
            "../shared (benchmarks, reference corpus) is not beside this checkout; "
            "these tests run in CI, where it is"
        )
    return path


@pytest.fixture(autouse=True)
def _offline_hub(monkeypatch):
    # Tests never reach a model hub: everything they load is made locally.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")
