"""Training throughput on CPU: infir's trainer against transformers' `Trainer`, same run.

Same model (a 7.4M-parameter Llama: hidden 256, 4 layers, vocab 8192), same batch (micro-batch 8,
sequence 256), same data and thread count. Measured: tokens/s over the timed steps (after warm-up
steps that include compilation), and MFU against the fp32 and bf16 matmul peaks measured in this
run. Configurations:

  hf_fp32       transformers.Trainer, default TrainingArguments (fp32)
  hf_bf16       transformers.Trainer with bf16=True (CPU autocast)
  infir_fp32    infir's trainer, precision fp32
  infir_bf16    infir's trainer, bf16 autocast
  infir_default infir's CPU default (`precision: auto`, compile per `--compile`)

Prints one JSON line at the end with `speedup_vs_hf_trainer` (infir default vs Trainer default) and
the equal-precision ratios.

    pip install -c constraints.txt -e ".[bench]"   # transformers.Trainer needs accelerate
    python benchmarks/train_throughput.py [--steps 30] [--warmup 5] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch

VOCAB, HIDDEN, LAYERS, SEQ, MICRO = 8192, 256, 4, 256, 8


def make_model(seed: int = 0):
    from infir.model.llm import ModelConfig, build_model

    torch.manual_seed(seed)
    cfg = ModelConfig(preset=None, hidden_size=HIDDEN, num_layers=LAYERS, num_heads=4, num_kv_heads=4,
                      intermediate_size=688, max_position_embeddings=SEQ, tie_embeddings=True)
    return build_model(cfg, vocab_size=VOCAB)


def batches(n: int, seed: int = 0) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        ids = torch.randint(0, VOCAB, (MICRO, SEQ), generator=g)
        out.append({"input_ids": ids, "labels": ids.clone(),
                    "position_ids": torch.arange(SEQ).expand(MICRO, SEQ).clone()})
    return out


class ListData:
    def __init__(self, items):
        self.items, self.i = items, 0

    def __iter__(self):
        while True:
            yield self.items[self.i % len(self.items)]
            self.i += 1

    def state_dict(self):
        return {"i": self.i}

    def load_state_dict(self, s):
        self.i = s["i"]


def time_infir(precision: str, compile_: bool, steps: int, warmup: int, data: list[dict]) -> float:
    from infir.train.config import TrainConfig
    from infir.train.parallel import DistInfo
    from infir.train.trainer import Trainer

    cfg = TrainConfig(max_steps=steps + warmup, global_batch_size=MICRO, micro_batch_size=MICRO, seq_len=SEQ,
                      precision=precision, compile=compile_, log_every=10_000, resume="never", peak_flops=1.0)
    stamps = {}

    def on_step(step, record):  # called on logged steps only: log every step via a tiny log_every
        stamps[step] = time.perf_counter()

    cfg = cfg.model_copy(update={"log_every": 1})
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(cfg, make_model(), None, ListData(data), Path(tmp), DistInfo(), log=lambda m: None,
                          on_step=on_step)
        trainer.save = lambda: None  # checkpoint writes are not training throughput
        trainer.fit()
    return steps * MICRO * SEQ / (stamps[steps + warmup] - stamps[warmup])


def time_hf(bf16: bool, steps: int, warmup: int, data: list[dict]) -> float:
    from transformers import Trainer, TrainerCallback, TrainingArguments

    stamps = {}

    class Stamp(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            stamps[state.global_step] = time.perf_counter()

    class Rows(torch.utils.data.Dataset):
        def __len__(self):
            return len(data) * MICRO

        def __getitem__(self, i):
            b = data[(i // MICRO) % len(data)]
            return {"input_ids": b["input_ids"][i % MICRO], "labels": b["labels"][i % MICRO]}

    with tempfile.TemporaryDirectory() as tmp:
        args = TrainingArguments(output_dir=tmp, per_device_train_batch_size=MICRO, max_steps=steps + warmup,
                                 report_to=[], save_strategy="no", logging_strategy="no", use_cpu=True, bf16=bf16,
                                 dataloader_num_workers=0, disable_tqdm=True)
        trainer = Trainer(model=make_model(), args=args, train_dataset=Rows(), callbacks=[Stamp()])
        trainer.train()
    return steps * MICRO * SEQ / (stamps[steps + warmup] - stamps[warmup])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--compile", action="store_true", help="also time infir with torch.compile")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    from infir.train.config import resolve_precision
    from infir.train.flops import flops_per_token, measured_matmul_peak

    data = batches(8)
    default_precision = resolve_precision("auto", torch.device("cpu"))
    peaks = {"fp32": measured_matmul_peak("cpu", "fp32", size=1024, seconds=1.0),
             "bf16": measured_matmul_peak("cpu", "bf16", size=1024, seconds=1.0)}
    fpt = flops_per_token(make_model(), SEQ)
    results = {}
    runs = [("hf_fp32", lambda: time_hf(False, args.steps, args.warmup, data)),
            ("infir_fp32", lambda: time_infir("fp32", False, args.steps, args.warmup, data)),
            ("hf_bf16", lambda: time_hf(True, args.steps, args.warmup, data)),
            ("infir_bf16", lambda: time_infir("bf16", False, args.steps, args.warmup, data))]
    if args.compile:
        runs.append(("infir_bf16_compile", lambda: time_infir("bf16", True, args.steps, args.warmup, data)))
    for name, fn in runs:
        tps = fn()
        prec = "bf16" if "bf16" in name else "fp32"
        results[name] = {"tokens_per_s": round(tps, 1), "mfu": round(tps * fpt / peaks[prec], 4)}
        print(f"{name:20s} {tps:10.1f} tokens/s  MFU {results[name]['mfu']:.3f} (vs {prec} matmul peak)", flush=True)
    default_key = f"infir_{default_precision}" + ("_compile" if args.compile and default_precision == "bf16" else "")
    line = {
        "benchmark": "train_throughput", "threads": args.threads, "steps": args.steps,
        "model": {"hidden": HIDDEN, "layers": LAYERS, "vocab": VOCAB, "seq": SEQ, "micro_batch": MICRO},
        "matmul_peak_gflops": {k: round(v / 1e9, 1) for k, v in peaks.items()},
        "flops_per_token": fpt, "results": results, "infir_default": default_key,
        "speedup_vs_hf_trainer": round(results[default_key]["tokens_per_s"] / results["hf_fp32"]["tokens_per_s"], 3),
        "fp32_ratio_vs_hf_trainer": round(results["infir_fp32"]["tokens_per_s"] / results["hf_fp32"]["tokens_per_s"], 3),
        "bf16_ratio_vs_hf_trainer": round(results["infir_bf16"]["tokens_per_s"] / results["hf_bf16"]["tokens_per_s"], 3),
        "load_average": os.getloadavg()[0],
    }
    print(json.dumps(line))


if __name__ == "__main__":
    main()
