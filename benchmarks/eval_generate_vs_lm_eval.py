"""Greedy generation on GSM8K prompts: infir's generator vs lm-evaluation-harness's HF backend.

Same checkpoint (loaded from disk by each), same prompts (zero-shot "Question: ...\\nAnswer:"), same stop
strings, batch size and token budget. Each side is timed on its generation call alone
(`HFLM.generate_until` for lm-eval, `Generator.generate` for infir), after a two-prompt warm-up; the
outputs are compared text for text.

    python benchmarks/eval_generate_vs_lm_eval.py [--model DIR] [--n 200] [--batch-size 16] \
        [--max-new-tokens 256]

Needs `pip install -e '.[bench]'` (lm-eval) and ../shared (GSM8K, tokenizer). Without --model it trains
the small model of `eval_tiny_model.py` first (a few minutes on CPU).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from eval_tiny_model import SHARED, train_tiny_model  # noqa: E402


def lm_eval_generate(
    model_dir: Path, prompts: list[str], stops: list[str], batch_size: int, max_new_tokens: int
) -> tuple[list[str], float]:
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    lm = HFLM(pretrained=str(model_dir), device="cpu", dtype="float32", batch_size=batch_size)
    kwargs = {"until": list(stops), "do_sample": False, "max_gen_toks": max_new_tokens}

    def requests(ps):
        return [
            Instance(request_type="generate_until", doc={}, arguments=(p, dict(kwargs)), idx=i)
            for i, p in enumerate(ps)
        ]

    lm.generate_until(requests(prompts[:2]), disable_tqdm=True)  # warm-up
    t0 = time.perf_counter()
    outputs = lm.generate_until(requests(prompts), disable_tqdm=True)
    return outputs, time.perf_counter() - t0


def infir_generate(
    model_dir: Path, prompts: list[str], stops: list[str], batch_size: int, max_new_tokens: int
) -> tuple[list[str], float, int]:
    from infir.eval.generate import Generator

    gen = Generator.from_pretrained(model_dir, device="cpu", dtype="float32")
    gen.generate(prompts[:2], max_new_tokens=max_new_tokens, stop=stops, batch_size=batch_size)  # warm-up
    t0 = time.perf_counter()
    outs = gen.generate(prompts, max_new_tokens=max_new_tokens, stop=stops, batch_size=batch_size)
    return [o.text for o in outs], time.perf_counter() - t0, gen.last_stats.new_tokens


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, help="checkpoint folder (default: train the small benchmark model)")
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--max-new-tokens", type=int, default=256)
    p.add_argument("--shared", type=Path, default=SHARED)
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads, the same for both sides")
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    from infir.eval.registry import get_task

    model_dir = args.model or train_tiny_model(Path(tempfile.mkdtemp(prefix="infir-bench-model-")))
    task = get_task("gsm8k", data_path=args.shared / "benchmarks" / "gsm8k")
    docs = task.docs(args.n)
    prompts = [task.build_prompt(d, num_fewshot=0) for d in docs]
    stops = task.stops(chat=False)

    ref, lm_eval_seconds = lm_eval_generate(model_dir, prompts, stops, args.batch_size, args.max_new_tokens)
    ours, infir_seconds, new_tokens = infir_generate(
        model_dir, prompts, stops, args.batch_size, args.max_new_tokens
    )
    identical = sum(a == b for a, b in zip(ref, ours))
    for i, (a, b) in enumerate(zip(ref, ours)):
        if a != b:
            print(f"differs at prompt {i}:\n  lm-eval: {a!r}\n  infir:   {b!r}", file=sys.stderr)
            break
    print(
        json.dumps(
            {
                "prompts": len(prompts),
                "batch_size": args.batch_size,
                "max_new_tokens": args.max_new_tokens,
                "torch_threads": torch.get_num_threads(),
                "new_tokens": new_tokens,
                "lm_eval_seconds": round(lm_eval_seconds, 2),
                "infir_seconds": round(infir_seconds, 2),
                "identical_outputs": identical,
                "identical_fraction": round(identical / len(prompts), 4),
                "speedup_vs_lm_eval": round(lm_eval_seconds / infir_seconds, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
