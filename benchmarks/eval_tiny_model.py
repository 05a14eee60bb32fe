"""A small Llama trained for a few minutes on GSM8K-style text, for the eval benchmarks.

Used by `eval_generate_vs_lm_eval.py` and `eval_mmlu_vs_lm_eval.py` so both peers load the very same
checkpoint from disk. Training is brief on purpose: the model only needs to have learnt the worksheet
layout ("Question: ...\\nAnswer: ...", blank line, next "Question:") so its answers end at different
lengths, as a real model's do.

    python benchmarks/eval_tiny_model.py --out DIR [--steps 300]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import torch

SHARED = Path(__file__).resolve().parents[2] / "shared"


def build_tokenizer(shared: Path = SHARED):
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(
        tokenizer_file=str(shared / "tokenizers" / "llama-test-tokenizer.json"),
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
    )
    tok.pad_token = tok.eos_token
    return tok


def training_text(shared: Path, n: int, seed: int = 0) -> list[str]:
    """GSM8K train worksheets plus the tiny corpus's generated worksheets (same layout, easier to learn)."""
    from infir.data.builtin import iter_builtin

    rows = [json.loads(line) for line in (shared / "benchmarks" / "gsm8k" / "train.jsonl").open()]
    random.Random(seed).shuffle(rows)
    blocks = [f"Question: {r['question']}\nAnswer: {r['answer']}" for r in rows[:n]]
    # Worksheets of four problems, blank-line separated, as the tiny pretraining corpus lays them out.
    texts = ["\n\n".join(blocks[i : i + 4]) for i in range(0, len(blocks), 4)]
    texts += [doc["text"] for doc in iter_builtin("reasoning_gym", docs_per_family=n // 32, seed=seed)]
    random.Random(seed).shuffle(texts)
    return texts


def train_tiny_model(
    out: Path,
    steps: int = 1000,
    seq_len: int = 128,
    batch: int = 8,
    seed: int = 0,
    shared: Path = SHARED,
    init_from: Path | None = None,
    threads: int = 1,
) -> Path:
    from transformers import LlamaConfig, LlamaForCausalLM

    # One intra-op thread: on a 2-core machine shared with other jobs, two threads spin on each other.
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    tok = build_tokenizer(shared)
    ids = []
    for text in training_text(shared, 4000, seed):
        ids += tok(text)["input_ids"] + [tok.eos_token_id]
    data = torch.tensor(ids)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=128,
        intermediate_size=384,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM.from_pretrained(init_from) if init_from else LlamaForCausalLM(config)
    opt = torch.optim.AdamW(model.parameters(), lr=5e-3, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=5e-3, total_steps=steps, pct_start=0.1)
    gen = torch.Generator().manual_seed(seed)
    t0 = time.time()
    model.train()
    for step in range(steps):
        starts = torch.randint(0, len(data) - seq_len - 1, (batch,), generator=gen)
        x = torch.stack([data[s : s + seq_len] for s in starts])
        loss = model(input_ids=x, labels=x).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        if step % 50 == 0 or step == steps - 1:
            print(f"step {step:4d} loss {loss.item():.3f} ({time.time() - t0:.0f}s)", flush=True)
    model.eval()
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    print(f"saved the benchmark model to {out} (reuse it with --model)", file=sys.stderr, flush=True)
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--init-from", type=Path, help="continue training this checkpoint")
    args = p.parse_args()
    train_tiny_model(args.out, args.steps, init_from=args.init_from)


if __name__ == "__main__":
    main()
