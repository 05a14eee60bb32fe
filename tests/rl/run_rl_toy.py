"""Train the toy policy with GRPO; run by tests as a subprocess (kill -9, then resume)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from infir.rl.grpo import GRPOObjective
from infir.train.config import TrainConfig
from infir.train.parallel import DistInfo
from infir.train.trainer import Trainer
from infir.train.callbacks import OnLog
from tests.rl.helpers import DigitsTask, load, rollout_source


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("out")
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--save-every", type=int, default=3)
    ap.add_argument("--step-sleep", type=float, default=0.0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    model, tok = load(Path(args.model))
    ref, _ = load(Path(args.model))
    # ppo_epochs=2 with save_every=3: some checkpoints fall between the two steps of one rollout
    source = rollout_source(
        model,
        tok,
        DigitsTask(),
        group_size=4,
        prompts_per_step=4,
        ppo_epochs=2,
        ref_model=ref.eval().requires_grad_(False),
    )
    cfg = TrainConfig(
        max_steps=args.steps,
        global_batch_size=16,
        micro_batch_size=8,
        seq_len=64,
        log_every=1,
        save_every=args.save_every,
        keep_last=2,
        deterministic=True,
        precision="fp32",
        optimizer={"lr": 1e-2, "weight_decay": 0.0},
        schedule={"kind": "constant", "warmup_steps": 0},
        peak_flops=1e12,
    )
    sleep = args.step_sleep
    trainer = Trainer(
        cfg,
        model,
        tok,
        source,
        Path(args.out),
        DistInfo(),
        log=lambda m: None,
        objective=GRPOObjective(kl_coef=0.1),
        callbacks=[OnLog(lambda s, r: time.sleep(sleep) if sleep else None)],
    )
    result = trainer.fit()
    print(json.dumps({"steps": result.steps, "resumed_from": result.resumed_from}))


if __name__ == "__main__":
    main()
