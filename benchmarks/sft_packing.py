"""SFT throughput and padding, packed (best-fit decreasing) against one conversation per row.

The tiny recipe's SFT data (with --run-dir: that run's verified synth output; otherwise generated
step-by-step problems of the three arithmetic families), its model shape (`micro`), the same tokenizer
and its global batch of 4 rows of 256 tokens. Unpacked rows are padded to the longest row of their batch
(as TRL does without packing). Reported per mode: padding share, all tokens/s, and useful
(non-padding) tokens/s — the figure that decides how long an epoch takes — plus epoch time.

    python benchmarks/sft_packing.py [--per-family 400] [--steps 30] [--run-dir runs/tiny]

With --run-dir, that run's tokenizer and synth data are used; otherwise a tokenizer is trained here.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch


def tokenizer_for(run_dir: str | None, tmp: Path):
    from transformers import AutoTokenizer

    if run_dir:
        return AutoTokenizer.from_pretrained(Path(run_dir) / "tokenize" / "tokenizer")
    from infir.data.builtin import iter_builtin
    from infir.tokenize.config import TokenizerConfig
    from infir.tokenize.tokenizer import train_tokenizer

    texts = [d["text"] for d in iter_builtin("python_docs", max_docs=200)]
    texts += [d["text"] for d in iter_builtin("reasoning_gym", docs_per_family=40)]
    train_tokenizer(texts, TokenizerConfig(vocab_size=4096), tmp / "tok", log=lambda *_: None)
    return AutoTokenizer.from_pretrained(tmp / "tok")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--per-family", type=int, default=400)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--run-dir", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    from infir.model.llm import ModelConfig, build_model
    from infir.sft.config import ConversationSource
    from infir.sft.data import load_conversations
    from infir.sft.packing import ConversationBatches, encode_all
    from infir.train.config import TrainConfig
    from infir.train.parallel import DistInfo
    from infir.train.trainer import Trainer
    from infir.train.callbacks import OnLog

    seq, batch = 256, 4
    with tempfile.TemporaryDirectory() as tmp:
        tok = tokenizer_for(args.run_dir, Path(tmp))
        if args.run_dir:
            convos, _ = load_conversations([ConversationSource(type="synth")], run_dir=Path(args.run_dir))
        else:
            src = ConversationSource(
                type="generated",
                per_family=args.per_family,
                seed=11,
                families=["chain_sum", "basic_arithmetic", "simple_equations"],
            )
            convos, _ = load_conversations([src])
        examples, _ = encode_all(tok, convos, seq)
        useful_total = sum(len(e.input_ids) for e in examples)
        results = {}
        for packing in (False, True):
            data = ConversationBatches(examples, seq, batch, seed=0, pad_id=tok.pad_token_id, packing=packing)
            stamps, counted = {}, {"all": 0, "useful": 0}
            total = args.steps + args.warmup

            def on_step(step, record, data=data):
                stamps[step] = time.perf_counter()
                if step > args.warmup:
                    b = data.batch_at(step - 1)
                    counted["all"] += b["input_ids"].numel()
                    counted["useful"] += int((b["input_ids"] != tok.pad_token_id).sum())

            torch.manual_seed(0)
            model = build_model(ModelConfig(preset="micro"), tokenizer=tok)
            cfg = TrainConfig(
                max_steps=total,
                global_batch_size=batch,
                micro_batch_size=batch,
                seq_len=seq,
                log_every=1,
                resume="never",
                peak_flops=1.0,
            )
            trainer = Trainer(
                cfg,
                model,
                tok,
                data,
                Path(tmp) / f"run{packing}",
                DistInfo(),
                log=lambda m: None,
                callbacks=[OnLog(on_step)],
            )
            trainer.save = lambda: None
            trainer.fit()
            secs = stamps[total] - stamps[args.warmup]
            useful_tps = counted["useful"] / secs
            name = "packed" if packing else "unpacked"
            results[name] = {
                "rows_per_epoch": len(data.rows),
                "padding_share": round(data.padding_share(), 4),
                "tokens_per_s": round(counted["all"] / secs, 1),
                "useful_tokens_per_s": round(useful_tps, 1),
                "epoch_seconds": round(useful_total / useful_tps, 1),
            }
            print(name, results[name], flush=True)
    print(
        json.dumps(
            {
                "benchmark": "sft_packing",
                "conversations": len(examples),
                "seq_len": seq,
                "global_batch": batch,
                "results": results,
                "useful_tokens_speedup_packed_vs_unpacked": round(
                    results["packed"]["useful_tokens_per_s"] / results["unpacked"]["useful_tokens_per_s"], 3
                ),
                "load_average": os.getloadavg()[0],
            }
        )
    )


if __name__ == "__main__":
    main()
