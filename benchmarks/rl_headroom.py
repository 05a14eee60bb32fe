"""What GRPO could gain on a checkpoint: greedy accuracy against sampled accuracy, pass@k and maj@k.

GRPO sharpens the policy towards completions that score above their group's mean. On prompts where the
model is right some of the time (0 < p < 1), sharpening moves greedy decoding towards the majority
answer; maj@k above greedy accuracy is the room RL has on the eval set. Sampled accuracy far below
greedy means rollouts at that temperature are off the path greedy evaluation takes.

    python benchmarks/rl_headroom.py --model DIR [--recipe tiny] [--k 8] [--temperatures 0.5 0.7 1.0]
        [--threads 1] [key=value ...]

Held-out problems and chat prompts are the recipe's eval tasks (raise `eval.tasks.0.options.n`).
Ends with one JSON line; the peer is greedy decoding (`maj_gain_vs_greedy` per temperature).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from collections import Counter
from pathlib import Path


def group_stats(correct: list[list[bool]], answers: list[list[str | None]]) -> dict:
    """Mean accuracy, pass@k, maj@k and the share of prompts with mixed outcomes (GRPO's signal)."""
    n = len(correct)
    mixed = sum(0 < sum(c) < len(c) for c in correct)
    maj = 0
    for cs, ans in zip(correct, answers):
        votes = Counter(a for a in ans if a is not None)
        if votes:
            top = votes.most_common(1)[0][0]
            maj += cs[ans.index(top)]
    return {
        "mean": round(sum(map(sum, correct)) / sum(map(len, correct)), 4),
        "pass": round(sum(any(c) for c in correct) / n, 4),
        "maj": round(maj / n, 4),
        "mixed_groups": round(mixed / n, 4),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, type=Path)
    ap.add_argument("--recipe", default="tiny")
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--temperatures", type=float, nargs="+", default=[0.5, 0.7, 1.0])
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--bf16", action="store_true", help="decode under bf16 autocast, as CPU rollouts do")
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()

    import torch

    from infir.config import load_recipe
    from infir.eval.generate import Generator
    from infir.eval.runner import build_task

    if args.threads:
        torch.set_num_threads(args.threads)
    recipe = load_recipe(args.recipe, args.overrides)
    spec = recipe.eval.tasks[0]
    task = build_task(spec)
    docs = task.docs(spec.limit)
    gen = Generator.from_pretrained(args.model, "cpu", "float32")
    prompts = [task.build_prompt(d, chat=True, tokenizer=gen.tokenizer) for d in docs]
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if args.bf16 else contextlib.nullcontext()
    max_new = recipe.rl.max_new_tokens

    def judge(outputs, k):
        correct, answers = [], []
        for i, d in enumerate(docs):
            rows = [task.evaluate(d, g.text) for g in outputs[i * k : (i + 1) * k]]
            correct.append([bool(r["correct"]) for r in rows])
            answers.append([r.get("extracted") for r in rows])
        return correct, answers

    out = {"model": str(args.model), "n": len(docs), "k": args.k, "bf16": args.bf16}
    t = time.perf_counter()
    with autocast:
        greedy = gen.generate(prompts, max_new_tokens=max_new, temperature=0.0, batch_size=150)
    c, _ = judge(greedy, 1)
    out["greedy"] = round(sum(x[0] for x in c) / len(c), 4)
    out["greedy_tokens"] = round(sum(g.new_tokens for g in greedy) / len(greedy), 2)
    print(f"greedy {out['greedy']} ({time.perf_counter() - t:.0f}s)", flush=True)
    for temp in args.temperatures:
        t = time.perf_counter()
        with autocast:
            samples = gen.generate(
                prompts, max_new_tokens=max_new, temperature=temp, num_samples=args.k, seed=13, batch_size=150
            )
        c, a = judge(samples, args.k)
        stats = group_stats(c, a)
        stats["tokens"] = round(sum(g.new_tokens for g in samples) / len(samples), 2)
        stats["truncated"] = round(sum(g.finish_reason == "length" for g in samples) / len(samples), 4)
        out[f"T{temp}"] = stats
        out.setdefault("maj_gain_vs_greedy", {})[f"T{temp}"] = round(stats["maj"] - out["greedy"], 4)
        print(f"T={temp}: {stats} ({time.perf_counter() - t:.0f}s)", flush=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
