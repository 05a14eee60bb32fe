"""GRPO on the shared trainer: a short run learns the toy task, and kill -9 + rerun repeats it exactly."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from infir.rl.grpo import GRPOObjective
from infir.train.config import TrainConfig
from infir.train.parallel import DistInfo
from infir.train.trainer import Trainer
from tests.rl.helpers import DigitsTask, load, rollout_source

RUN_TOY = Path(__file__).with_name("run_rl_toy.py")
COMPARED = (
    "loss",
    "reward",
    "reward_std",
    "accuracy",
    "completion_tokens",
    "kl",
    "clip_frac",
    "ratio",
    "grad_norm",
)


def test_a_short_run_raises_the_mean_reward(chat_model_dir, tmp_path):
    torch.set_num_threads(1)
    model, tok = load(chat_model_dir)
    source = rollout_source(model, tok, DigitsTask(), group_size=8, prompts_per_step=4, max_new_tokens=6)
    cfg = TrainConfig(
        max_steps=20,
        global_batch_size=32,
        micro_batch_size=16,
        seq_len=64,
        log_every=1,
        precision="fp32",
        optimizer={"lr": 1e-2, "weight_decay": 0.0},
        schedule={"kind": "constant", "warmup_steps": 0},
        peak_flops=1e12,
    )
    trainer = Trainer(
        cfg, model, tok, source, tmp_path / "rl", DistInfo(), objective=GRPOObjective(), log=lambda m: None
    )
    trainer.fit()
    rows = trainer.metrics.read()
    rewards = [r["reward"] for r in rows]
    assert len(rewards) == 20
    first, last = sum(rewards[:5]) / 5, sum(rewards[-5:]) / 5
    assert last > first + 0.25, rewards  # the share of digits in the output climbs
    assert {"reward", "accuracy", "clip_frac", "ratio", "completion_tokens", "loss", "lr"} <= rows[0].keys()
    assert all(r["ratio"] == 1.0 and r["clip_frac"] == 0.0 for r in rows)  # one step per rollout: on-policy


def metrics(path: Path) -> dict[int, dict]:
    rows = [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: {k: r.get(k) for k in COMPARED} for r in rows}


def _toy(model: Path, out: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    return subprocess.Popen(
        [sys.executable, str(RUN_TOY), str(model), str(out), *extra],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def test_kill_9_then_rerun_repeats_rewards_and_losses_bitwise(chat_model_dir, tmp_path):
    ref = _toy(chat_model_dir, tmp_path / "ref")
    assert ref.wait(timeout=300) == 0, ref.stderr.read().decode()[-2000:]
    kill_at = random.Random().randint(4, 10)
    victim = _toy(chat_model_dir, tmp_path / "run", "--step-sleep", "0.3")
    deadline = time.time() + 300
    metrics_file = tmp_path / "run" / "metrics.jsonl"
    while time.time() < deadline:
        if metrics_file.exists() and len(metrics_file.read_text().splitlines()) >= kill_at:
            break
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    rerun = _toy(chat_model_dir, tmp_path / "run")
    out, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err.decode()[-2000:]
    resumed_from = json.loads(out.decode().strip().splitlines()[-1])["resumed_from"]
    assert resumed_from is not None and 0 < resumed_from <= kill_at, (kill_at, resumed_from)
    expected, got = metrics(tmp_path / "ref"), metrics(tmp_path / "run")
    assert sorted(got) == list(range(1, 13))
    assert all(got[s] == expected[s] for s in got), (
        kill_at,
        resumed_from,
    )  # bitwise, KL and clipping included
    assert any(expected[s]["clip_frac"] > 0 for s in expected)  # the second step of a rollout is off-policy
