"""One small curated run directory per session, copied by the tests that need upstream outputs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.reliability.helpers import TINY, infir


@pytest.fixture(scope="session")
def curated(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("curated")
    out = infir("curate", "tiny", "--run-dir", str(root / "run"), *TINY, cwd=root)
    assert out.returncode == 0, out.stderr[-3000:]
    return root / "run"


@pytest.fixture
def run_copy(curated, tmp_path) -> Path:
    """A private copy of the curated run directory (without the lock file of the run that made it)."""
    dest = tmp_path / "run"
    shutil.copytree(curated, dest, ignore=shutil.ignore_patterns(".lock"))
    return dest


@pytest.fixture(scope="session")
def tokenized(curated, tmp_path_factory) -> Path:
    """The curated run with its tokenize stage done, in a folder whose run dir is `run` (as `curated`'s)."""
    root = tmp_path_factory.mktemp("tokenized")
    shutil.copytree(curated, root / "run", ignore=shutil.ignore_patterns(".lock"))
    out = infir("tokenize", "tiny", "--run-dir", "run", *TINY, cwd=root)
    assert out.returncode == 0, out.stderr[-3000:]
    return root / "run"
