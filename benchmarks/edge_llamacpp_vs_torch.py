"""llama.cpp (GGUF f16 / q8_0 / q4_0) against PyTorch CPU (fp32, int8 dynamic) on the same model.

Same checkpoint, same prompts, greedy decoding, same thread count, each variant in its own process.
Reports generation and prompt-processing tokens/s, peak resident memory, file size, token agreement of
32 greedy tokens on 3 prompts against the fp32 PyTorch model, the mean log-likelihood of held-out text
and (optionally) the accuracy change on the held-out reasoning task. Ends with one JSON line;
`speedup_vs_pytorch` is generation tokens/s over PyTorch fp32's.

    python benchmarks/edge_llamacpp_vs_torch.py [--model DIR] [--threads 2] [--task-limit 20]

Without --model it trains the tiny preset's shape (hidden 256, 4 layers, 688-wide MLP, tied embeddings)
for a few hundred steps on local text (benchmarks/edge_model.py) and exports it.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    from edge_model import build_edge_model

    from infir.export.edge_bench import BenchSettings, find_variants, run_bench, write_result
    from infir.export.gguf_export import export_gguf
    from infir.export.llamacpp import INSTALL_HINT, llama_cpp_available

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, help="HF model folder (default: train the tiny shape here)")
    p.add_argument("--steps", type=int, default=400, help="training steps of the model built here")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--prompt-tokens", type=int, default=128)
    p.add_argument("--gen-tokens", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--task-limit", type=int, default=20, help="held-out reasoning problems; 0: skip accuracy")
    p.add_argument("--work", type=Path, help="folder for the model and GGUFs (default: a temporary one)")
    p.add_argument("--output", type=Path, help="also write the full result JSON here")
    args = p.parse_args()
    if not llama_cpp_available():
        raise SystemExit(INSTALL_HINT)

    work = args.work or Path(tempfile.mkdtemp(prefix="infir-edge-"))
    work.mkdir(parents=True, exist_ok=True)
    model_dir = args.model
    if model_dir is None:
        model_dir = work / "model"
        if not (model_dir / "config.json").is_file():
            t0 = time.perf_counter()
            build_edge_model(
                model_dir,
                steps=args.steps,
                hidden=256,
                layers=4,
                heads=4,
                kv_heads=4,
                intermediate=688,
                vocab_size=2048,
                threads=args.threads,
                log=lambda m: print(m, file=sys.stderr),
            )
            print(f"trained the benchmark model in {time.perf_counter() - t0:.0f}s", file=sys.stderr)
    ggufs = []
    for quant in ("f16", "q8_0", "q4_0"):
        out = work / f"model-{quant}.gguf"
        export_gguf(model_dir, out, quant, log=lambda m: print(m, file=sys.stderr))
        ggufs.append(out)

    settings = BenchSettings(
        prompt_tokens=args.prompt_tokens,
        gen_tokens=args.gen_tokens,
        repeats=args.repeats,
        agreement_tokens=32,
        threads=args.threads,
        task="reasoning" if args.task_limit else None,
        task_limit=args.task_limit or None,
    )
    result = run_bench(
        find_variants([model_dir, *ggufs], reference=model_dir),
        settings,
        log=lambda m: print(m, file=sys.stderr),
    )
    if args.output:
        write_result(result, args.output)
    by_name = {v["name"]: v for v in result.variants}
    print(
        json.dumps(
            {
                "benchmark": "edge_llamacpp_vs_torch",
                "model": str(model_dir) if args.model else "tiny shape (256x4, tied), trained here",
                "threads": settings.threads,
                "gen_tokens_per_s": {n: v["gen_tokens_per_s"] for n, v in by_name.items()},
                "prompt_tokens_per_s": {n: v["prompt_tokens_per_s"] for n, v in by_name.items()},
                "peak_rss_mb": {n: v["peak_rss_mb"] for n, v in by_name.items()},
                "file_mb": {n: round(v["file_bytes"] / 2**20, 2) for n, v in by_name.items()},
                "greedy_agreement_32": {n: v["agreement"]["matching_prefix"] for n, v in by_name.items()},
                "f16_exact": by_name["llamacpp-f16"]["agreement"]["exact"],
                "heldout_nll": {n: v["heldout_nll"] for n, v in by_name.items()},
                "heldout_nll_delta_vs_fp32": {n: v["heldout_nll_delta_vs_fp32"] for n, v in by_name.items()},
                "accuracy": {n: (v.get("accuracy") or {}).get("value") for n, v in by_name.items()},
                "accuracy_delta_vs_fp32": {
                    n: (v.get("accuracy") or {}).get("delta_vs_fp32") for n, v in by_name.items()
                },
                "speedup_vs_pytorch": result.speedup_vs_pytorch,
            }
        )
    )


if __name__ == "__main__":
    main()
