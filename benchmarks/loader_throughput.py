"""Packing mixture loader throughput against the tiny model's training throughput, same machine, same run.

The loader must never be the bottleneck: it should deliver >= 20x the tokens per second that one
training step of the tiny model (the `tiny` preset's shape: 4 layers, hidden 256, tied embeddings)
consumes on this machine. Both sides use the same sequences: seq_len 256, global batch 16, an 8k
vocabulary, the pretrain mixture over shards tokenized from the reference corpus (or `--corpus`).

    python benchmarks/loader_throughput.py

Prints one JSON line; `ratio_vs_tiny_model_training` is loader tokens/s over training tokens/s.
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def default_corpus() -> Path:
    shared = Path(os.environ.get("INFIR_SHARED", REPO.parent / "shared"))
    return shared / "corpus" / "refcorpus.jsonl.gz"


def make_curated(corpus: Path, out: Path, max_docs: int) -> None:
    """A curate-stage folder from the corpus: three domains by a simple rule, for a real 3-way mixture."""
    kept = out / "kept"
    kept.mkdir(parents=True)
    with gzip.open(corpus, "rt", encoding="utf-8") as f, gzip.open(kept / "00000.jsonl.gz", "wt") as w:
        for i, line in enumerate(itertools.islice(f, max_docs)):
            doc = json.loads(line)
            text = doc["text"]
            digits = sum(c.isdigit() for c in text)
            domain = (
                "code"
                if "def " in text or "import " in text
                else "math"
                if digits > 0.05 * len(text)
                else "web"
            )
            w.write(json.dumps({"id": doc["id"], "text": doc["text"], "metadata": {"domain": domain}}) + "\n")
    weights = {"web": 0.5, "code": 0.3, "math": 0.2}
    (out / "mixtures.json").write_text(json.dumps({"pretrain": {"weights": weights}}))


def training_tokens_per_s(vocab: int, batch: dict, steps: int) -> float:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=vocab,
        hidden_size=256,
        intermediate_size=688,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=4,
        tie_word_embeddings=True,
        max_position_embeddings=1024,
        attn_implementation="sdpa",
    )
    model = LlamaForCausalLM(cfg).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def step():
        loss = model(**batch, use_cache=False).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    step()  # warm-up: allocations, kernels
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return batch["input_ids"].numel() * steps / (time.perf_counter() - t0)


def loader_tokens_per_s(loader, steps: int) -> float:
    it = iter(loader)
    next(it)
    t0 = time.perf_counter()
    tokens = sum(b["input_ids"].numel() for b in itertools.islice(it, steps))
    return tokens / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, default=default_corpus())
    ap.add_argument("--max-docs", type=int, default=3000)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--global-batch", type=int, default=16)
    ap.add_argument("--train-steps", type=int, default=10)
    ap.add_argument("--loader-steps", type=int, default=400)
    args = ap.parse_args()
    if not args.corpus.exists():
        raise SystemExit(f"{args.corpus}: corpus not found (pass --corpus)")

    from infir.tokenize.config import TokenizeConfig, TokenizerConfig
    from infir.tokenize.loader import build_loader
    from infir.tokenize.stage import tokenize_corpus

    work = Path(tempfile.mkdtemp(prefix="infir-bench-loader-"))
    try:
        make_curated(args.corpus, work / "curate", args.max_docs)
        summary = tokenize_corpus(
            work / "curate" / "kept",
            work / "tokenize",
            TokenizerConfig(vocab_size=8192),
            TokenizeConfig(workers=os.cpu_count()),
            work / "curate" / "mixtures.json",
            log=lambda *_: None,
            progress=False,
        )
        tokenize_dir = work / "tokenize"
        loader = build_loader(tokenize_dir, "pretrain", args.seq_len, args.global_batch, seed=0)
        loader_rate = loader_tokens_per_s(loader, args.loader_steps)
        workers_rate = loader_tokens_per_s(
            build_loader(tokenize_dir, "pretrain", args.seq_len, args.global_batch, seed=0, num_workers=2),
            args.loader_steps,
        )
        vocab = summary["tokenizer"]["vocab_size"]
        train_rate = training_tokens_per_s(vocab, loader.batch(0), args.train_steps)
        print(
            json.dumps(
                {
                    "benchmark": "loader_throughput",
                    "seq_len": args.seq_len,
                    "global_batch": args.global_batch,
                    "domains": {d: s["train_tokens"] for d, s in summary["domains"].items()},
                    "loader_tokens_per_s": round(loader_rate),
                    "loader_2_workers_tokens_per_s": round(workers_rate),
                    "tiny_model_training_tokens_per_s": round(train_rate),
                    "ratio_vs_tiny_model_training": round(loader_rate / train_rate, 1),
                }
            )
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
