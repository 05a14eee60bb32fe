"""GRPO on the tiny recipe's SFT model: held-out accuracy after RL against after SFT, reward curve, time.

Needs a run directory whose `sft` stage has completed (e.g. `infir run tiny --run-dir DIR
stages=[curate,tokenize,pretrain,anneal,synth,sft]`). Runs the `rl` stage with the recipe's `rl:`
section (the proposal below when the recipe has none), then evaluates `sft/final` and `rl/final` with
the recipe's eval tasks and chat prompts, exactly as the eval stage does.

    python benchmarks/rl_tiny.py --run-dir DIR [--threads 1] [--force] [rl.key=value ...]

Ends with one JSON line: accuracies, `accuracy_gain_vs_sft` (the peer is the SFT model the run starts
from), the reward curve's first/last means and the RL stage's wall time.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import yaml

# The `rl:` section proposed for recipes/tiny.yaml (used when the loaded recipe has no `rl` field).
TINY_RL = yaml.safe_load("""
init_from: sft
task: reasoning
prompts: {source: generated, families: [chain_sum, basic_arithmetic, simple_equations], per_family: 1000, seed: 5}
group_size: 8
prompts_per_step: 8
micro_batch_size: 32
seq_len: 192
max_new_tokens: 64
temperature: 1.0
max_steps: 60
optimizer: {lr: 1.0e-4, weight_decay: 0.0}
reward: {correct: 1.0, format: 0.1}
save_every: 20
""")


def load_recipe(overrides: list[str]):
    from pydantic import Field

    from infir.config import Recipe, apply_override, load_recipe, parse_override
    from infir.rl.config import RLConfig

    recipe = load_recipe("tiny")
    tree = recipe.model_dump(mode="json")
    if "rl" not in Recipe.model_fields:
        class RLRecipe(Recipe):
            rl: RLConfig = Field(default_factory=RLConfig)

        tree["rl"] = dict(TINY_RL)
        cls = RLRecipe
    else:
        cls = Recipe
        tree.setdefault("rl", dict(TINY_RL))
    for item in overrides:
        apply_override(tree, *parse_override(item))
    stages = [s for s in tree["stages"] if s not in ("export", "report")]
    tree["stages"] = stages[:stages.index("sft") + 1] + ["rl"] + [s for s in stages if s == "eval"]
    return cls.model_validate(tree)


def accuracy(results: dict) -> dict:
    return {task: metrics.get("accuracy", metrics.get("pass@1")) for task, metrics in results.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run-dir", required=True, type=Path)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--force", action="store_true", help="rerun the rl stage even if complete")
    ap.add_argument("overrides", nargs="*", help="recipe overrides, e.g. rl.max_steps=40")
    args = ap.parse_args()

    import torch

    from infir.eval.stage import evaluate_checkpoint
    from infir.rl import stage as rl_stage
    from infir.run import Stage, run_stage

    if args.threads:
        torch.set_num_threads(args.threads)
    recipe = load_recipe(args.overrides)
    run_dir = args.run_dir
    t0 = time.perf_counter()
    summary = run_stage(recipe, Stage("rl", ("rl", "seed"), ("sft",), rl_stage.run, resumable=True), run_dir,
                        force=args.force)
    rl_seconds = summary.get("seconds", round(time.perf_counter() - t0, 1))
    out_root = run_dir / "rl-bench-eval"
    results = {}
    for stage in ("sft", "rl"):
        t = time.perf_counter()
        results[stage] = evaluate_checkpoint(run_dir / stage / "final", out_root / stage, recipe.eval, chat=True)
        print(f"{stage}: {results[stage]} ({time.perf_counter() - t:.1f}s)", flush=True)
    records = [json.loads(x) for x in (run_dir / "rl" / "metrics.jsonl").read_text().splitlines()]
    curve = [[r["step"], r["reward"], r["accuracy"]] for r in records if "reward" in r]
    sft_acc, rl_acc = accuracy(results["sft"]), accuracy(results["rl"])
    print(json.dumps({
        "sft_accuracy": sft_acc, "rl_accuracy": rl_acc,
        "accuracy_gain_vs_sft": {t: round(rl_acc[t] - sft_acc[t], 4) for t in rl_acc},
        "rl_seconds": rl_seconds, "rl_steps": summary["steps"], "rollout_s_mean": round(
            sum(r["rollout_s"] for r in records if "rollout_s" in r) / max(1, len(curve)), 3),
        "reward_first": summary.get("reward_first"), "reward_last": summary.get("reward_last"),
        "reward_curve_every_10": curve[::10] + ([curve[-1]] if curve and (len(curve) - 1) % 10 else []),
        "threads": torch.get_num_threads(),
    }))


if __name__ == "__main__":
    main()
