"""The shrunken tiny recipe under torchrun: 2 ranks on one node, and 2 simulated nodes (gloo, CPU).

Every stage runs once (rank 0 alone, or every rank for training), rank 0 alone writes the run
directory, a rerun skips everything, and pretraining on 2 ranks or 2 nodes logs the 1-process losses.
"""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.test_tiny_pipeline import SHRINK, STAGES, infir
from tests.ports import free_port, retry_on_port_clash
from tests.train.helpers import losses

# fp32 and a loss line per step: 1 and 2 ranks then differ only by the order of float sums.
OVERRIDES = [*SHRINK, "pretrain.precision=fp32", "pretrain.log_every=1"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}


def torchrun(*args: str, cwd: Path, nproc: int = 2) -> subprocess.CompletedProcess:
    return retry_on_port_clash(lambda port: _torchrun(port, *args, cwd=cwd, nproc=nproc))


def _torchrun(port: int, *args: str, cwd: Path, nproc: int) -> subprocess.CompletedProcess:
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node",
        str(nproc),
        "--master-port",
        str(port),
        "-m",
        "infir",
        *args,
    ]
    return subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def two_rank_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("torchrun")
    out = torchrun("run", "tiny", "--run-dir", str(root / "run"), *OVERRIDES, cwd=root)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-5000:]
    return root, out


def _copy_data_stages(src: Path, dst: Path) -> None:
    dst.mkdir(parents=True)
    for stage in ("curate", "tokenize"):
        shutil.copytree(src / stage, dst / stage, symlinks=True)


def test_whole_recipe_runs_every_stage_once_and_writes_the_report(two_rank_run):
    root, out = two_rank_run
    run = root / "run"
    assert f"report: {(run / 'report' / 'index.html').resolve()}" in out.stdout
    assert out.stdout.count("report: ") == 1  # one rank prints the result
    for stage in STAGES:
        assert out.stderr.count(f"{stage}: done in") == 1, stage
    assert sorted(p.parent.name for p in run.rglob("_COMPLETE")) == sorted(STAGES)
    assert not list(run.rglob(".*.tmp-*")) and not list(run.rglob(".*.old-*"))  # no stray temporary files
    for stage in ("pretrain", "anneal", "sft"):  # trained on both ranks
        assert json.loads((run / stage / "summary.json").read_text())["world_size"] == 2, stage
    # SFT's conversations were encoded by both ranks into one joined, packed store
    assert (run / "sft" / "encoded" / "_DONE").is_file() and not list(
        (run / "sft" / "encoded").glob("part-*")
    )
    rl = json.loads((run / "rl" / "summary.json").read_text())  # rank 0 alone while the other waited
    assert rl["steps"] == 2
    evaluated = json.loads((run / "eval" / "summary.json").read_text())["results"]
    assert set(evaluated) == {"pretrain", "anneal", "sft", "rl"}


def test_rerun_skips_every_stage(two_rank_run):
    root, _ = two_rank_run
    run = root / "run"
    before = {p: p.stat().st_mtime_ns for p in run.rglob("summary.json")}
    again = torchrun("run", "tiny", "--run-dir", str(run), *OVERRIDES, cwd=root)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stderr.count("skipped ") == len(STAGES)
    assert {p: p.stat().st_mtime_ns for p in run.rglob("summary.json")} == before


def test_two_rank_pretraining_logs_the_one_process_losses(two_rank_run):
    root, _ = two_rank_run
    single = root / "single"
    _copy_data_stages(root / "run", single)
    out = infir("pretrain", "tiny", "--run-dir", str(single), *OVERRIDES, cwd=root, env=ENV)
    assert out.returncode == 0, out.stderr[-3000:]
    one, two = losses(single / "pretrain"), losses(root / "run" / "pretrain")
    assert sorted(one) == sorted(two) == list(range(1, 13))
    assert two[1] == pytest.approx(one[1], rel=1e-6)
    for step in one:
        assert two[step] == pytest.approx(one[step], rel=1e-4), step


def test_two_nodes_on_one_rendezvous_pretrain_like_one_process(two_rank_run):
    """Two torchrun launchers, one process each, meeting at one c10d rendezvous as two nodes would."""
    root, _ = two_rank_run
    nodes = root / "nodes"
    _copy_data_stages(root / "run", nodes)
    endpoint, rdzv_id = f"127.0.0.1:{free_port()}", f"infir-test-{os.getpid()}"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes",
        "2",
        "--nproc-per-node",
        "1",
        "--rdzv-backend",
        "c10d",
        "--rdzv-endpoint",
        endpoint,
        "--rdzv-id",
        rdzv_id,
        "-m",
        "infir",
        "pretrain",
        "tiny",
        "--run-dir",
        str(nodes),
        *OVERRIDES,
    ]
    launchers = []
    for _ in range(2):
        launchers.append(
            subprocess.Popen(
                cmd, cwd=root, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
        )
        time.sleep(1.0)  # the first launcher hosts the rendezvous store
    outputs = [p.communicate(timeout=600) for p in launchers]
    for p, (_, err) in zip(launchers, outputs):
        assert p.returncode == 0, err[-3000:]
    summary = json.loads((nodes / "pretrain" / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["steps"] == 12
    single, two_nodes = losses(root / "run" / "pretrain"), losses(nodes / "pretrain")
    assert sorted(two_nodes) == list(range(1, 13))
    for step in single:  # 2 ranks either way: the same sums in the same order
        assert two_nodes[step] == single[step], step
