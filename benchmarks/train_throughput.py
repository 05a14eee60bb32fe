"""Training throughput on CPU: infir's trainer against transformers' `Trainer`, same run, same steps.

Same model (a 7.4M-parameter Llama: hidden 256, 4 layers, vocab 8192), same batch (micro-batch 8,
sequence 256), same data and thread count. Configurations:

  hf_fp32       transformers.Trainer, default TrainingArguments (fp32)
  hf_bf16       transformers.Trainer with bf16=True (CPU autocast)
  infir_fp32    infir's trainer, precision fp32
  infir_bf16    infir's trainer, bf16 autocast
  infir_bf16_compile  (with --compile) bf16 autocast + torch.compile

The machine is shared, and its load drifts by more than the differences measured here, so the
training loops do not run one after another: each runs in its own thread and they take turns, one
optimizer step each (round robin), so every configuration sees the same load. A step's time runs
from the moment its loop gets the turn to the end of its step (data loading, forward, backward,
clipping, optimizer, logging included; the waits for the other loops excluded), over the timed
steps after `--warmup` steps (which include compilation). Tokens/s are at the median step time
(and over the total time); a ratio is the median over rounds of the two loops' step-time ratio,
with its quartiles and the ratio of total times (which a single load spike can sway). MFU is against the fp32
and bf16 matmul peaks measured in this run, in a turn of their own in the same rotation (median).

Prints one JSON line at the end with `speedup_vs_hf_trainer` (infir's CPU default vs the Trainer's
default) and the equal-precision ratios (`fp32_ratio_vs_hf_trainer`, `bf16_ratio_vs_hf_trainer`).

    pip install -c constraints.txt -e ".[bench]"   # transformers.Trainer needs accelerate
    python benchmarks/train_throughput.py [--steps 60] [--warmup 5] [--threads 2] [--compile]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

import torch

VOCAB, HIDDEN, LAYERS, SEQ, MICRO = 8192, 256, 4, 256, 8


def make_model(seed: int = 0):
    from infir.model.llm import ModelConfig, build_model

    torch.manual_seed(seed)
    cfg = ModelConfig(
        preset=None,
        hidden_size=HIDDEN,
        num_layers=LAYERS,
        num_heads=4,
        num_kv_heads=4,
        intermediate_size=688,
        max_position_embeddings=SEQ,
        tie_embeddings=True,
    )
    return build_model(cfg, vocab_size=VOCAB)


def batches(n: int, seed: int = 0) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        ids = torch.randint(0, VOCAB, (MICRO, SEQ), generator=g)
        out.append(
            {
                "input_ids": ids,
                "labels": ids.clone(),
                "position_ids": torch.arange(SEQ).expand(MICRO, SEQ).clone(),
            }
        )
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


class TakeTurns:
    """Round-robin turns between training loops running in threads: one optimizer step per turn.

    Each loop calls `start(name)` before it builds its trainer and `step_done(name)` at the end of
    every step; `step_done` records the busy time of the turn, hands the turn on and waits for the
    next. A loop that has done its steps (or failed) leaves the rotation; one that has done its steps
    waits for the others before it goes on, so that no teardown runs during another loop's turn.
    """

    def __init__(self, names: list[str], steps: int):
        self.names, self.steps = list(names), steps
        self.cond = threading.Condition()
        self.turn = self.names[0]
        self.left: set[str] = set()
        self.t0: dict[str, float] = {}
        self.busy: dict[str, list[float]] = {n: [] for n in names}

    def _next(self, name: str) -> str:
        i = self.names.index(name)
        for k in range(1, len(self.names) + 1):
            cand = self.names[(i + k) % len(self.names)]
            if cand not in self.left:
                return cand
        return name

    def _wait_turn(self, name: str) -> None:
        self.cond.wait_for(lambda: self.turn == name)
        self.t0[name] = time.perf_counter()

    def start(self, name: str) -> None:
        with self.cond:
            self._wait_turn(name)

    def step_done(self, name: str) -> None:
        now = time.perf_counter()
        with self.cond:
            self.busy[name].append(now - self.t0[name])
            if len(self.busy[name]) >= self.steps:
                self.left.add(name)
            self.turn = self._next(name)
            self.cond.notify_all()
            if name not in self.left:
                self._wait_turn(name)
            else:  # tear down (free the model, end of train) only when every loop has timed its steps
                self.cond.wait_for(lambda: len(self.left) == len(self.names))

    def leave(self, name: str) -> None:
        with self.cond:
            self.left.add(name)
            if self.turn == name:
                self.turn = self._next(name)
            self.cond.notify_all()


def run_infir(turns: TakeTurns, name: str, precision: str, compile_: bool, data: list[dict]) -> None:
    from infir.train.config import TrainConfig
    from infir.train.parallel import DistInfo
    from infir.train.trainer import Trainer
    from infir.train.callbacks import OnLog

    # log_every=1: the on_step hook (which takes turns) runs after every step; progress bars off on both sides.
    cfg = TrainConfig(
        max_steps=turns.steps,
        global_batch_size=MICRO,
        micro_batch_size=MICRO,
        seq_len=SEQ,
        precision=precision,
        compile=compile_,
        log_every=1,
        progress=False,
        resume="never",
        peak_flops=1.0,
    )
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(
            cfg,
            make_model(),
            None,
            ListData(data),
            Path(tmp),
            DistInfo(),
            log=lambda m: None,
            callbacks=[OnLog(lambda step, record: turns.step_done(name))],
        )
        trainer.save = lambda: None  # checkpoint writes are not training throughput
        trainer.fit()


def run_hf(turns: TakeTurns, name: str, bf16: bool, data: list[dict]) -> None:
    from transformers import Trainer, TrainerCallback, TrainingArguments

    class TakeTurn(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            turns.step_done(name)

    class Rows(torch.utils.data.Dataset):
        def __len__(self):
            return len(data) * MICRO

        def __getitem__(self, i):
            b = data[(i // MICRO) % len(data)]
            return {"input_ids": b["input_ids"][i % MICRO], "labels": b["labels"][i % MICRO]}

    with tempfile.TemporaryDirectory() as tmp:
        args = TrainingArguments(
            output_dir=tmp,
            per_device_train_batch_size=MICRO,
            max_steps=turns.steps,
            report_to=[],
            save_strategy="no",
            logging_strategy="no",
            use_cpu=True,
            bf16=bf16,
            dataloader_num_workers=0,
            disable_tqdm=True,
        )
        trainer = Trainer(model=make_model(), args=args, train_dataset=Rows(), callbacks=[TakeTurn()])
        trainer.train()


def run_matmul_peaks(turns: TakeTurns, name: str, peaks: dict[str, list[float]]) -> None:
    """A turn of its own in the rotation: the fp32 and bf16 matmul peaks under the same load as training."""
    from infir.train.flops import measured_matmul_peak

    for i in range(turns.steps):
        for prec in ("fp32", "bf16"):
            peaks[prec].append(measured_matmul_peak.__wrapped__("cpu", prec, size=1024, seconds=0.15))
        turns.step_done(name)


def run_in_turns(loops: dict, steps: int, threads: int) -> TakeTurns:
    turns = TakeTurns(list(loops), steps)
    errors: dict[str, BaseException] = {}

    def body(name, fn):
        torch.set_num_threads(threads)  # per thread: the OpenMP team size is thread-local
        try:
            turns.start(name)
            fn(turns, name)
        except BaseException as exc:  # report after the others finish
            errors[name] = exc
        finally:
            turns.leave(name)

    workers = [threading.Thread(target=body, args=(n, fn), name=n) for n, fn in loops.items()]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    if errors:
        name, exc = next(iter(errors.items()))
        raise RuntimeError(f"{name} failed") from exc
    short = {n: len(b) for n, b in turns.busy.items() if len(b) < steps}
    if short:
        raise RuntimeError(f"loops stopped early: {short} of {steps} steps")
    return turns


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=60, help="timed steps per configuration")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--compile", action="store_true", help="also time infir with torch.compile")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    from infir.train.config import resolve_precision
    from infir.train.flops import flops_per_token

    data = batches(8)
    default_precision = resolve_precision("auto", torch.device("cpu"))
    fpt = flops_per_token(make_model(), SEQ)
    peak_samples: dict[str, list[float]] = {"fp32": [], "bf16": []}
    loops = {
        "matmul_peak": lambda t, n: run_matmul_peaks(t, n, peak_samples),
        "hf_fp32": lambda t, n: run_hf(t, n, False, data),
        "infir_fp32": lambda t, n: run_infir(t, n, "fp32", False, data),
        "hf_bf16": lambda t, n: run_hf(t, n, True, data),
        "infir_bf16": lambda t, n: run_infir(t, n, "bf16", False, data),
    }
    if args.compile:
        loops["infir_bf16_compile"] = lambda t, n: run_infir(t, n, "bf16", True, data)
    load_before = os.getloadavg()[0]
    turns = run_in_turns(loops, args.warmup + args.steps, args.threads)
    timed = {n: b[args.warmup :] for n, b in turns.busy.items() if n != "matmul_peak"}
    peaks = {prec: statistics.median(v[2 * args.warmup :]) for prec, v in peak_samples.items()}
    results = {}
    for name, times in timed.items():
        prec = "bf16" if "bf16" in name else "fp32"
        median = statistics.median(times)
        tps = MICRO * SEQ / median
        results[name] = {
            "tokens_per_s": round(tps, 1),
            "tokens_per_s_total_time": round(len(times) * MICRO * SEQ / sum(times), 1),
            "mfu": round(tps * fpt / peaks[prec], 4),
            "median_step_ms": round(1000 * median, 1),
            "max_step_ms": round(1000 * max(times), 1),
        }
        print(
            f"{name:20s} {tps:10.1f} tokens/s at the median step {1000 * median:7.1f} ms (slowest "
            f"{1000 * max(times):7.1f} ms)  MFU {results[name]['mfu']:.3f} (vs {prec} matmul peak)",
            flush=True,
        )

    def ratio(ours: str, theirs: str) -> tuple[float, list[float], float]:
        """Median of the per-round step-time ratios (theirs / ours), its quartiles, and the ratio of total times.

        The median round is the headline: a load spike on this shared machine lands in one loop's turn
        and would otherwise count against whichever loop it hit."""
        per_round = [t / o for o, t in zip(timed[ours], timed[theirs])]
        q1, med, q3 = statistics.quantiles(per_round, n=4)
        total = sum(timed[theirs]) / sum(timed[ours])
        return round(med, 3), [round(q1, 3), round(q3, 3)], round(total, 3)

    default_key = f"infir_{default_precision}" + (
        "_compile" if args.compile and default_precision == "bf16" else ""
    )
    speedup, speedup_q, speedup_total = ratio(default_key, "hf_fp32")
    fp32, fp32_q, fp32_total = ratio("infir_fp32", "hf_fp32")
    bf16, bf16_q, bf16_total = ratio("infir_bf16", "hf_bf16")
    line = {
        "benchmark": "train_throughput",
        "threads": args.threads,
        "steps": args.steps,
        "warmup": args.warmup,
        "timing": "round robin, one step per turn; ratios: median of per-round step-time ratios",
        "model": {"hidden": HIDDEN, "layers": LAYERS, "vocab": VOCAB, "seq": SEQ, "micro_batch": MICRO},
        "matmul_peak_gflops": {k: round(v / 1e9, 1) for k, v in peaks.items()},
        "flops_per_token": fpt,
        "results": results,
        "infir_default": default_key,
        "speedup_vs_hf_trainer": speedup,
        "speedup_vs_hf_trainer_quartiles": speedup_q,
        "speedup_vs_hf_trainer_total_time": speedup_total,
        "fp32_ratio_vs_hf_trainer": fp32,
        "fp32_ratio_vs_hf_trainer_quartiles": fp32_q,
        "fp32_ratio_vs_hf_trainer_total_time": fp32_total,
        "bf16_ratio_vs_hf_trainer": bf16,
        "bf16_ratio_vs_hf_trainer_quartiles": bf16_q,
        "bf16_ratio_vs_hf_trainer_total_time": bf16_total,
        "load_average": {"before": load_before, "after": os.getloadavg()[0]},
    }
    print(json.dumps(line))


if __name__ == "__main__":
    main()
