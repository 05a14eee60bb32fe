"""A LLaVA-layout VL checkpoint (InfiR-VL: SigLIP + MLP + LM) in llama.cpp against transformers on the CPU.

The same checkpoint, the same held-out generated images and questions, greedy decoding, the same thread
count. llama.cpp runs the exported text GGUF (f16 and q8_0) with the f16 `mmproj` file through libmtmd;
PyTorch runs the checkpoint in fp32 through `LlavaForConditionalGeneration.generate`. Reported per
variant: agreement of the greedy answers with PyTorch's (share of images whose answer is the same token for
token), answer tokens/s, prompt evaluation ms per image (the vision tower, the projector and the prompt's
text tokens), and peak resident memory of its own process. Ends with one JSON line;
`speedup_vs_pytorch` is the f16 variant's answer tokens/s over PyTorch's.

    python benchmarks/edge_vl_llamacpp.py --model RUN/vl/final [--images 24] [--threads 2]

(`recipes/tiny-vl.yaml` makes such a checkpoint: `infir run tiny-vl`.)
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import tempfile
import time
from pathlib import Path

import numpy as np

from infir.export.edge_bench import peak_rss_mb  # VmHWM: a spawned worker's own peak, not its parent's

GENERATORS = ("shapes", "charts", "text", "gui")


def _prompts(model_dir: Path, n: int, seed: int) -> list[tuple[str, np.ndarray]]:
    """Held-out generated images with one of their questions, rendered with the checkpoint's chat template."""
    from transformers import AutoConfig, AutoProcessor

    from infir.data.images import generate

    processor = AutoProcessor.from_pretrained(str(model_dir))
    size = AutoConfig.from_pretrained(str(model_dir)).vision_config.image_size
    per = max(1, -(-n // len(GENERATORS)))
    items = []
    for name in GENERATORS:
        for g in generate(name, per, seed=seed, split="heldout", size=size):
            messages = [
                {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": g.qas[0].question}]}
            ]
            prompt = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
            items.append((prompt, np.asarray(g.image.convert("RGB"))))
    return items[:n]


def _torch_worker(model_dir: str, items, max_new: int, threads: int, queue) -> None:
    import torch
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    torch.set_num_threads(threads)
    processor = AutoProcessor.from_pretrained(model_dir)
    model = LlavaForConditionalGeneration.from_pretrained(model_dir, dtype=torch.float32).eval()
    answers, gen_s, tokens, prompt_ms = [], 0.0, 0, []
    for prompt, image in items:
        inputs = processor(text=prompt, images=[image], return_tensors="pt")
        with torch.inference_mode():
            t0 = time.perf_counter()
            model(**inputs)  # the prompt alone, timed like llama.cpp's prompt evaluation
            prompt_ms.append((time.perf_counter() - t0) * 1000)
            t0 = time.perf_counter()
            out = model.generate(**inputs, max_new_tokens=max_new, do_sample=False)
            gen_s += time.perf_counter() - t0
        answer = out[0, inputs["input_ids"].shape[1] :].tolist()
        answers.append(answer)
        tokens += len(answer)
    queue.put(
        {
            "name": "pytorch-fp32",
            "answers": answers,
            "tokens_per_s": tokens / gen_s,
            "prompt_ms": float(np.median(prompt_ms)),
            "peak_mb": peak_rss_mb(),
        }
    )


def _llama_worker(text_gguf: str, mmproj: str, name: str, items, max_new: int, threads: int, queue) -> None:
    from infir.export.llamacpp_vl import LlamaCppVLM

    vlm = LlamaCppVLM(text_gguf, mmproj, n_ctx=1024, threads=threads)
    answers, gen_s, tokens, prompt_ms = [], 0.0, 0, []
    for prompt, image in items:
        t0 = time.perf_counter()
        out = vlm.greedy(prompt, image, max_new)
        total = time.perf_counter() - t0
        prompt_ms.append(out.prompt_eval_ms)
        gen_s += total - out.prompt_eval_ms / 1000
        answers.append(out.token_ids)
        tokens += len(out.token_ids)
    vlm.close()
    queue.put(
        {
            "name": name,
            "answers": answers,
            "tokens_per_s": tokens / gen_s,
            "prompt_ms": float(np.median(prompt_ms)),
            "peak_mb": peak_rss_mb(),
        }
    )


def _in_process(target, *args) -> dict:
    ctx = mp.get_context("spawn")  # each variant's peak memory is its own
    queue = ctx.Queue()
    proc = ctx.Process(target=target, args=(*args, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def main() -> None:
    from infir.export.gguf_export import export_gguf
    from infir.export.mmproj import export_mmproj

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--model", type=Path, required=True, help="a LLaVA-layout checkpoint folder (e.g. RUN/vl/final)"
    )
    p.add_argument("--images", type=int, default=24)
    p.add_argument("--max-new-tokens", type=int, default=24)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--work", type=Path, help="folder for the GGUF files (default: a temporary one)")
    args = p.parse_args()

    work = args.work or Path(tempfile.mkdtemp(prefix="infir-edge-vl-"))
    work.mkdir(parents=True, exist_ok=True)
    model = args.model.resolve()
    mmproj = work / "mmproj-f16.gguf"
    export_mmproj(model, mmproj, log=lambda *_: None)
    texts = {q: work / f"model-{q}.gguf" for q in ("f16", "q8_0")}
    for quant, path in texts.items():
        export_gguf(model, path, quant, log=lambda *_: None)
    items = _prompts(model, args.images, args.seed)
    reference = _in_process(_torch_worker, str(model), items, args.max_new_tokens, args.threads)
    rows = [reference]
    for quant, path in texts.items():
        rows.append(
            _in_process(
                _llama_worker,
                str(path),
                str(mmproj),
                f"llama.cpp-{quant}",
                items,
                args.max_new_tokens,
                args.threads,
            )
        )
    print(f"{'variant':18s} {'agreement':>9s} {'answer tok/s':>12s} {'prompt ms':>9s} {'peak MB':>8s}")
    figures = {}
    for row in rows:
        same = sum(a == b for a, b in zip(row["answers"], reference["answers"])) / len(items)
        figures[row["name"]] = {
            "agreement": round(same, 3),
            "tokens_per_s": round(row["tokens_per_s"], 1),
            "prompt_ms": round(row["prompt_ms"], 2),
            "peak_mb": round(row["peak_mb"], 1),
        }
        print(
            f"{row['name']:18s} {same:9.3f} {row['tokens_per_s']:12.1f} {row['prompt_ms']:9.2f} "
            f"{row['peak_mb']:8.1f}"
        )
    speedup = rows[1]["tokens_per_s"] / reference["tokens_per_s"]
    print(
        json.dumps(
            {
                "model": str(args.model),
                "images": len(items),
                "max_new_tokens": args.max_new_tokens,
                "threads": args.threads,
                "variants": figures,
                "speedup_vs_pytorch": round(speedup, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
