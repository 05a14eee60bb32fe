"""Sampled decoding with infir's inverse-CDF sampler against `torch.multinomial`, on the same rows.

Two measurements, each alternating the two samplers round by round (same load for both):

  draw     one sampling call on (rows x vocab) softmax probabilities, the tiny recipe's shape
           (64 or 256 rows x 4096)
  rollout  a whole sampled generation of RL rollouts (8 samples per prompt, 64 new tokens at most,
           temperature 0.7) with a checkpoint's model, tokens/s

    python benchmarks/sampler_speed.py [--model DIR] [--rows 64 256] [--rounds 5] [--threads 1]

Without --model the rollout part is skipped. Ends with one JSON line; the ratio against the peer is
`speedup_vs_multinomial` (draw, per row count) and `rollout_speedup_vs_multinomial` (per batch size).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path


def multinomial_draw(self, probs):
    import torch

    return torch.multinomial(probs, 1, generator=self.generator).squeeze(-1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--rows", type=int, nargs="+", default=[64, 256])
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()

    import torch

    from infir.eval.sampling import Sampler

    if args.threads:
        torch.set_num_threads(args.threads)
    ours_draw = Sampler.draw
    samplers = {"infir": ours_draw, "multinomial": multinomial_draw}
    out: dict = {
        "benchmark": "sampler_speed",
        "threads": torch.get_num_threads(),
        "draw_ms": {},
        "speedup_vs_multinomial": {},
    }

    for rows in args.rows:
        probs = (torch.randn(rows, args.vocab, generator=torch.Generator().manual_seed(0)) / 0.7).softmax(-1)
        times = {name: [] for name in samplers}
        for _ in range(args.rounds):
            for name, draw in samplers.items():
                sampler = Sampler(temperature=1.0, seed=0)
                draw(sampler, probs)  # warm-up
                t = time.perf_counter()
                for _ in range(50):
                    draw(sampler, probs)
                times[name].append((time.perf_counter() - t) / 50 * 1e3)
        med = {name: statistics.median(v) for name, v in times.items()}
        out["draw_ms"][str(rows)] = {k: round(v, 4) for k, v in med.items()}
        out["speedup_vs_multinomial"][str(rows)] = round(med["multinomial"] / med["infir"], 2)
        print(
            f"draw {rows} x {args.vocab}: infir {med['infir']:.3f} ms, multinomial {med['multinomial']:.3f} ms",
            flush=True,
        )

    if args.model is not None:
        from infir.data.reasoning import generate as problems
        from infir.eval.generate import Generator

        gen = Generator.from_pretrained(args.model, device="cpu")
        texts = [
            gen.tokenizer.apply_chat_template(
                [{"role": "user", "content": p.question}], tokenize=False, add_generation_prompt=True
            )
            for family in ("chain_sum", "basic_arithmetic", "simple_equations")
            for p in problems(family, 32, seed=5)
        ]
        prompts = gen.encode(texts)
        out["rollout_tokens_per_s"], out["rollout_speedup_vs_multinomial"] = {}, {}
        for rows in args.rows:
            batch = prompts[: rows // 8]
            rates = {name: [] for name in samplers}
            for r in range(args.rounds):
                for name, draw in samplers.items():
                    Sampler.draw = draw
                    try:
                        t = time.perf_counter()
                        gens = gen.generate(
                            batch,
                            max_new_tokens=64,
                            temperature=0.7,
                            num_samples=8,
                            seed=r,
                            batch_size=rows,
                            return_token_ids=True,
                        )
                        rates[name].append(sum(g.new_tokens for g in gens) / (time.perf_counter() - t))
                    finally:
                        Sampler.draw = ours_draw
            med = {name: statistics.median(v) for name, v in rates.items()}
            out["rollout_tokens_per_s"][str(rows)] = {k: round(v, 1) for k, v in med.items()}
            out["rollout_speedup_vs_multinomial"][str(rows)] = round(med["infir"] / med["multinomial"], 2)
            print(
                f"rollout batch {rows}: infir {med['infir']:.0f} tok/s, multinomial {med['multinomial']:.0f} tok/s",
                flush=True,
            )
    print(json.dumps(out))


if __name__ == "__main__":
    main()
