"""Several ranks under torchrun (gloo, CPU): device-correct collectives, kill and resume, resharding resume."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.ports import free_port, retry_on_port_clash
from tests.train.helpers import losses

RUN_TOY = Path(__file__).with_name("run_toy.py")
STEPS, SAVE_EVERY = 16, 4


def toy_cmd(out: Path, ranks: int, *extra: str, port: int | None = None) -> list[str]:
    args = [
        str(RUN_TOY),
        str(out),
        "--steps",
        str(STEPS),
        "--save-every",
        str(SAVE_EVERY),
        "--micro",
        "1",
        *extra,
    ]
    if ranks == 1:
        return [sys.executable, *args]
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node",
        str(ranks),
        "--master-port",
        str(port or free_port()),
        *args,
    ]


def toy(out: Path, ranks: int, *extra: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    done = retry_on_port_clash(
        lambda port: subprocess.run(
            toy_cmd(out, ranks, *extra, port=port), env=env, capture_output=True, text=True, timeout=300
        )
    )
    if check:
        assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """Losses of uninterrupted runs on 1 and 2 ranks (same global batch)."""
    root = tmp_path_factory.mktemp("ref")
    toy(root / "one", 1)
    toy(root / "two", 2)
    return {1: losses(root / "one"), 2: losses(root / "two")}


def test_collectives_take_tensors_on_the_process_groups_device(tmp_path):
    # During the steps a tensor made without naming its device lands on `meta`, which no process group
    # takes: a count built with a bare torch.tensor(...) fails here as it fails on a CUDA/NCCL group.
    done = toy(tmp_path / "meta", 2, "--default-device", "meta", check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(losses(tmp_path / "meta")) == list(range(1, STEPS + 1))


def test_two_ranks_match_one_rank(uninterrupted):
    one, two = uninterrupted[1], uninterrupted[2]
    assert sorted(one) == sorted(two) == list(range(1, STEPS + 1))
    for step in one:
        assert two[step] == pytest.approx(one[step], rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("saved_on,resumed_on", [(2, 1), (2, 4), (1, 2)])
def test_checkpoint_resumes_on_another_world_size(tmp_path, uninterrupted, saved_on, resumed_on):
    out = tmp_path / "run"
    stopped = toy(out, saved_on, "--stop-at", "10", check=False)  # every rank ends before step 10
    assert stopped.returncode != 0
    assert (out / "checkpoints" / "step-00000008").is_dir()
    toy(out, resumed_on)
    got, ref = losses(out), uninterrupted[saved_on]
    assert sorted(got) == list(range(1, STEPS + 1))
    for step in range(1, 9):
        assert got[step] == ref[step]  # written before the stop
    for step in range(9, STEPS + 1):  # the same model and optimizer state, summed in another order
        assert got[step] == pytest.approx(ref[step], rel=1e-5, abs=1e-6), step


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [int(x) for x in out]


def test_kill_9_of_one_rank_then_rerun_ends_with_the_uninterrupted_losses(tmp_path, uninterrupted):
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    launcher = subprocess.Popen(
        toy_cmd(out, 2, "--step-sleep", "0.2"), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    kill_after = random.Random().randint(SAVE_EVERY + 1, STEPS - 2)
    deadline = time.time() + 240
    while time.time() < deadline:
        metrics = out / "metrics.jsonl"
        if metrics.exists() and len(metrics.read_text().splitlines()) >= kill_after:
            break
        time.sleep(0.02)
    ranks = _children(launcher.pid)
    assert ranks, "no rank processes found under torchrun"
    os.kill(ranks[-1], signal.SIGKILL)  # one rank dies; torchrun ends the others
    launcher.communicate(timeout=120)
    assert launcher.returncode != 0
    rerun = toy(out, 2)
    resumed_from = json.loads(rerun.stdout.strip().splitlines()[-1])["resumed_from"]
    assert resumed_from is not None and resumed_from <= kill_after, (kill_after, resumed_from)
    got, ref = losses(out), uninterrupted[2]
    assert sorted(got) == list(range(1, STEPS + 1))
    assert all(got[s] == ref[s] for s in got), (kill_after, resumed_from)  # bitwise: same ranks, same order
