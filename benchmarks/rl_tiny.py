"""GRPO on the tiny recipe's SFT model: held-out accuracy after RL against after SFT, reward curve, time.

Needs a run directory whose `sft` stage has completed (e.g. `infir run tiny --run-dir DIR
stages=[curate,tokenize,pretrain,anneal,synth,sft]`). Runs the `rl` stage with the recipe's `rl:`
section, then evaluates `sft/final` and `rl/final` with the recipe's eval tasks and chat prompts,
exactly as the eval stage does (raise `eval.tasks.0.options.n` for a tighter comparison).

    python benchmarks/rl_tiny.py --run-dir DIR [--recipe tiny] [--threads 1] [--force] [key=value ...]

Ends with one JSON line: accuracies, `accuracy_gain_vs_sft` (the peer is the SFT model the run starts
from) with the paired standard error of the gain per task (`paired`), the reward curve's first/last
means and the RL stage's wall time.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path


def accuracy(results: dict) -> dict:
    """Every accuracy figure per task (overall and per family)."""
    return {
        f"{task}/{key}": value
        for task, metrics in results.items()
        for key, value in metrics.items()
        if key.startswith("accuracy") or key == "pass@1"
    }


def paired_gain(sft_samples: Path, rl_samples: Path) -> dict:
    """RL minus SFT accuracy on the same problems, with the standard error of the paired difference.

    Both models answer the same prompts, so the per-problem differences (each -1, 0 or 1) carry the
    comparison; their standard error is far below that of two independent accuracies.
    """

    def verdicts(path: Path) -> dict:
        rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
        return {(r["doc_index"], r.get("sample", 0)): float(bool(r["correct"])) for r in rows}

    a, b = verdicts(sft_samples), verdicts(rl_samples)
    keys = sorted(a.keys() & b.keys())
    diffs = [b[k] - a[k] for k in keys]
    n = len(diffs)
    mean = sum(diffs) / n
    var = sum((d - mean) ** 2 for d in diffs) / (n - 1) if n > 1 else 0.0
    se = math.sqrt(var / n)
    return {
        "n": n,
        "gain": round(mean, 4),
        "paired_se": round(se, 4),
        "z": round(mean / se, 2) if se > 0 else None,
        "rl_better": int(sum(d > 0 for d in diffs)),
        "sft_better": int(sum(d < 0 for d in diffs)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run-dir", required=True, type=Path)
    ap.add_argument("--recipe", default="tiny")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--force", action="store_true", help="rerun the rl stage even if complete")
    ap.add_argument("overrides", nargs="*", help="recipe overrides, e.g. rl.max_steps=40")
    args = ap.parse_args()

    import torch

    from infir.config import load_recipe
    from infir.eval.stage import evaluate_checkpoint
    from infir.run import run_stage
    from infir.stages import STAGES

    if args.threads:
        torch.set_num_threads(args.threads)
    recipe = load_recipe(args.recipe, args.overrides)
    run_dir = args.run_dir
    t0 = time.perf_counter()
    summary = run_stage(recipe, STAGES["rl"], run_dir, force=args.force)
    rl_seconds = summary.get("seconds", round(time.perf_counter() - t0, 1))
    out_root = run_dir / "rl-bench-eval"
    results = {}
    for stage in ("sft", "rl"):
        t = time.perf_counter()
        results[stage] = evaluate_checkpoint(
            run_dir / stage / "final", out_root / stage, recipe.eval, chat=True
        )
        print(f"{stage}: {results[stage]} ({time.perf_counter() - t:.1f}s)", flush=True)
    records = [json.loads(x) for x in (run_dir / "rl" / "metrics.jsonl").read_text().splitlines()]
    curve = [[r["step"], r["reward"], r["accuracy"]] for r in records if "reward" in r]
    sft_acc, rl_acc = accuracy(results["sft"]), accuracy(results["rl"])
    print(
        json.dumps(
            {
                "sft_accuracy": sft_acc,
                "rl_accuracy": rl_acc,
                "accuracy_gain_vs_sft": {t: round(rl_acc[t] - sft_acc[t], 4) for t in rl_acc},
                "paired": {
                    task: paired_gain(
                        out_root / "sft" / f"{task}.samples.jsonl", out_root / "rl" / f"{task}.samples.jsonl"
                    )
                    for task in results["rl"]
                },
                "rl_seconds": rl_seconds,
                "rl_steps": summary["steps"],
                "rollout_s_mean": round(
                    sum(r["rollout_s"] for r in records if "rollout_s" in r) / max(1, len(curve)), 3
                ),
                "reward_first": summary.get("reward_first"),
                "reward_last": summary.get("reward_last"),
                "reward_curve_every_10": curve[::10]
                + ([curve[-1]] if curve and (len(curve) - 1) % 10 else []),
                "rollout_means": {
                    k: round(sum(r[k] for r in records if k in r) / max(1, sum(k in r for r in records)), 4)
                    for k in (
                        "zero_signal_groups",
                        "steps_followed",
                        "completion_tokens",
                        "trained_rows",
                        "ratio",
                        "clip_frac",
                        "kl",
                    )
                },
                "threads": torch.get_num_threads(),
            }
        )
    )


if __name__ == "__main__":
    main()
