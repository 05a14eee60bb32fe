"""Train the toy model; used by tests as a subprocess (kill -9 resume, torchrun with several ranks).

`--stop-at N` ends every rank right before step N (after the checkpoints before it), as a kill would,
but at a known step. `--default-device meta` makes a tensor created without naming its device land on
the meta device during the training steps, where no process group takes it: on this CPU-only machine it plays the part of the
CPU tensor that a CUDA/NCCL group rejects.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from infir.train.config import TrainConfig  # noqa: E402
from infir.train.parallel import init_distributed, shutdown  # noqa: E402
from infir.train.trainer import Trainer  # noqa: E402
from infir.train.callbacks import OnLog
from tests.train.helpers import RandomTokens, tiny_model  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--save-every", type=int, default=0)
    ap.add_argument("--micro", type=int, default=4)
    ap.add_argument("--step-sleep", type=float, default=0.0)
    ap.add_argument("--stop-at", type=int, default=0)
    ap.add_argument("--default-device", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    info = init_distributed("cpu")
    cfg = TrainConfig(
        max_steps=args.steps,
        global_batch_size=8,
        micro_batch_size=args.micro,
        seq_len=32,
        log_every=1,
        save_every=args.save_every,
        keep_last=2,
        deterministic=True,
        optimizer={"lr": 3e-3},
        peak_flops=1e12,
        precision="fp32",
    )
    data = RandomTokens(64, 32, 8, rank=info.rank, world=info.world_size, stop_at=args.stop_at)
    model = tiny_model()
    sleep = args.step_sleep

    def on_step(step, record):
        if sleep:
            import time

            time.sleep(sleep)

    trainer = Trainer(
        cfg, model, None, data, Path(args.out), info, callbacks=[OnLog(on_step)], log=lambda m: None
    )
    if args.default_device:  # around the steps (checkpoint writing is torch's code, not under test)
        for name in ("train_step", "validate"):
            setattr(trainer, name, _on_default_device(getattr(trainer, name), args.default_device))
    result = trainer.fit()
    if info.is_main:
        print(json.dumps({"steps": result.steps, "resumed_from": result.resumed_from}))
    if info.distributed:
        shutdown(synchronize=True)


def _on_default_device(fn, device: str):
    def run(*args, **kwargs):
        with torch.device(device):
            return fn(*args, **kwargs)

    return run


if __name__ == "__main__":
    main()
