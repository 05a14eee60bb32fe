"""GPU throughput of the 1B shape: ~50 bf16 steps of infir's trainer on one GPU, tokens/s and MFU.

The model is the Llama-3.2-1B architecture (random init, vocab 128256), trained on random tokens
with infir's `Trainer` exactly as a recipe runs it (bf16 autocast, fused AdamW, torch.compile,
packed-sequence position ids). MFU is against the card's dense bf16 peak (datasheet), with the
PaLM FLOP count (6N + attention). Prints one JSON line.

    python benchmarks/gpu_mfu.py [--steps 50] [--micro-batch 8] [--seq 2048] [--no-compile]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch


class RandomTokens:
    def __init__(self, vocab: int, batch: int, seq: int):
        self.vocab, self.batch, self.seq, self.i = vocab, batch, seq, 0

    def __iter__(self):
        g = torch.Generator().manual_seed(0)
        while True:
            ids = torch.randint(0, self.vocab, (self.batch, self.seq), generator=g)
            self.i += 1
            yield {
                "input_ids": ids,
                "labels": ids.clone(),
                "position_ids": torch.arange(self.seq).expand(self.batch, self.seq).clone(),
            }

    def state_dict(self):
        return {"i": self.i}

    def load_state_dict(self, s):
        self.i = s["i"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--micro-batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=2048)
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--attn", default="sdpa", choices=["sdpa", "flash_attention_2"])
    args = ap.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("gpu_mfu.py needs a CUDA GPU")
    from infir.model.llm import ModelConfig, build_model
    from infir.train.config import TrainConfig
    from infir.train.flops import flops_per_token, peak_flops
    from infir.train.parallel import DistInfo
    from infir.train.trainer import Trainer
    from infir.train.callbacks import OnLog

    device = torch.device("cuda")
    torch.backends.cuda.matmul.allow_tf32 = True
    model = build_model(ModelConfig(preset="llama-3.2-1b", attn_implementation=args.attn), vocab_size=128256)
    total = args.steps + args.warmup
    cfg = TrainConfig(
        max_steps=total,
        global_batch_size=args.micro_batch,
        micro_batch_size=args.micro_batch,
        seq_len=args.seq,
        precision="bf16",
        compile=not args.no_compile,
        log_every=1,
        resume="never",
        optimizer={"lr": 1e-4, "fused": True},
    )
    stamps: dict[int, float] = {}

    def on_step(step, record):
        torch.cuda.synchronize()
        stamps[step] = time.perf_counter()

    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(
            cfg,
            model,
            None,
            RandomTokens(128256, args.micro_batch, args.seq),
            Path(tmp),
            DistInfo(device=device),
            log=lambda m: None,
            callbacks=[OnLog(on_step)],
        )
        trainer.save = lambda: None  # timing training, not checkpoint writes
        trainer.fit()
    seconds = stamps[total] - stamps[args.warmup]
    tps = args.steps * args.micro_batch * args.seq / seconds
    fpt = flops_per_token(model, args.seq)
    peak = peak_flops(device, "bf16")
    print(
        json.dumps(
            {
                "benchmark": "gpu_mfu",
                "device": torch.cuda.get_device_name(device),
                "params": sum(p.numel() for p in model.parameters()),
                "seq": args.seq,
                "micro_batch": args.micro_batch,
                "compile": not args.no_compile,
                "steps": args.steps,
                "tokens_per_s": round(tps, 1),
                "mfu": round(tps * fpt / peak, 4),
                "peak_tflops": peak / 1e12,
                "max_memory_gb": round(torch.cuda.max_memory_allocated() / 2**30, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
