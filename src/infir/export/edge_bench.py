"""`infir bench-edge`: speed, memory and accuracy of a model as an edge device would run it.

Variants: a Hugging Face model folder gives `torch-fp32` and `torch-int8` (dynamic quantization); each
GGUF file gives `llamacpp-<quant>`. Every variant runs in a fresh process, so its peak memory is its own
and no runtime's thread pool disturbs another's. Each one measures, with the same thread count:

  - prompt processing tokens/s: one forward over `prompt_tokens` tokens of fixed text (median of repeats);
  - generation tokens/s: greedy decoding of `gen_tokens` tokens, one token per step, prefill excluded;
  - peak resident memory while running (VmHWM, reset once the model is loaded/quantized, so the
    transient fp32 copy int8 quantization starts from does not count) and the file size;
  - greedy continuations of fixed prompts, compared token for token with `torch-fp32`'s;
  - mean negative log-likelihood of held-out reasoning text (`heldout_nll`; its change against
    `torch-fp32` is the finest-grained accuracy change quantization shows, even where a small
    model scores nothing on a task);
  - optionally a task's accuracy through the eval runner, and its change against `torch-fp32`.

The result (see `BenchResult`) is written as JSON; `infir.export.report.edge_rows` turns it into rows.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path

AGREEMENT_PROMPTS = (
    "Question: What is 7 + 5?\nAnswer:",
    "Question: Tom has 3 apples and buys 4 more. How many apples does he have?\nAnswer:",
    "The function below returns the sum of a list of numbers.\n\ndef total(xs):\n",
)


@dataclass
class BenchSettings:
    prompt_tokens: int = 128
    gen_tokens: int = 64
    repeats: int = 3
    agreement_tokens: int = 32
    agreement_prompts: tuple[str, ...] = AGREEMENT_PROMPTS
    threads: int | None = None  # None: torch's default intra-op thread count, given to both runtimes
    task: str | None = None  # an eval task name (e.g. reasoning); None: no accuracy measurement
    task_limit: int | None = 50
    chat: bool = False
    n_ctx: int = 1024
    nll_tokens: int = 256  # held-out tokens scored for heldout_nll


@dataclass
class Variant:
    name: str  # torch-fp32, torch-int8, llamacpp-q4_0, ...
    runtime: str  # pytorch | llama.cpp
    path: str
    precision: str  # fp32, int8, f16, q8_0, q4_0
    tokenizer_dir: str | None = None  # HF tokenizer for prompt templates (llama.cpp accuracy runs)


@dataclass
class BenchResult:
    settings: dict
    variants: list[dict] = field(default_factory=list)
    speedup_vs_pytorch: dict[str, float] = field(default_factory=dict)  # gen tok/s over torch-fp32's
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


# ---- finding variants ----------------------------------------------------------------------------
def gguf_quant(path: Path) -> str:
    """The quant of a GGUF we wrote (general.file_type), e.g. q4_0."""
    import gguf

    reader = gguf.GGUFReader(str(path))
    field_ = reader.fields.get("general.file_type")
    if field_ is None:
        return "unknown"
    ftype = gguf.LlamaFileType(int(field_.contents()))
    return ftype.name.removeprefix("MOSTLY_").removeprefix("ALL_").lower()


def is_hf_model_dir(path: Path) -> bool:
    return path.is_dir() and (path / "config.json").is_file()


def find_variants(paths: list[Path], int8: bool = True, reference: Path | None = None) -> list[Variant]:
    """Variants for each path: a GGUF file, an HF model folder, or a folder holding either."""
    variants: list[Variant] = []
    hf_dirs: list[Path] = []  # named directly
    found: list[Path] = []  # inside a folder (e.g. the export stage's hf/); used only without a reference
    ggufs: list[Path] = []
    for path in paths:
        if path.is_file() and path.suffix == ".gguf":
            ggufs.append(path)
        elif is_hf_model_dir(path):
            hf_dirs.append(path)
        elif path.is_dir():
            ggufs += sorted(path.glob("*.gguf"))
            found += [p for p in sorted(path.iterdir()) if is_hf_model_dir(p)]
        else:
            raise FileNotFoundError(
                f"{path}: not a .gguf file, a Hugging Face model folder, or a folder of them"
            )
    candidates = list(dict.fromkeys([reference, *hf_dirs] if reference else hf_dirs or found[:1]))
    if len(candidates) > 1:
        raise FileNotFoundError(
            f"bench-edge compares the variants of one model; got several model folders "
            f"({', '.join(map(str, candidates))}): pass one, or name it with --reference"
        )
    reference = candidates[0] if candidates else None
    if reference is not None:
        variants.append(Variant("torch-fp32", "pytorch", str(reference), "fp32"))
        if int8:
            variants.append(Variant("torch-int8", "pytorch", str(reference), "int8"))
    for path in ggufs:
        quant = gguf_quant(path)
        variants.append(
            Variant(
                f"llamacpp-{quant}",
                "llama.cpp",
                str(path),
                quant,
                tokenizer_dir=str(reference) if reference else None,
            )
        )
    if not variants:
        raise FileNotFoundError(f"no model found in {', '.join(map(str, paths))}")
    return variants


# ---- memory --------------------------------------------------------------------------------------
def _status_kib(key: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def reset_peak_rss() -> bool:
    """Reset the kernel's resident-memory high-water mark (Linux); False where it cannot."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    kib = _status_kib("VmHWM")
    if kib is None:
        import resource

        kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(kib / 1024, 1)


# ---- one variant, in its own process ---------------------------------------------------------------
def _fixed_text(split: str = "train") -> str:
    from infir.data.reasoning import generate

    problems = generate("chain_sum", 60, seed=7, split=split)
    return "\n\n".join(f"Question: {p.question}\nAnswer: {p.solution}" for p in problems)


def _heldout_nll(variant: Variant, model, settings: BenchSettings) -> float:
    ids = model.tokenize(_fixed_text("heldout"))[: settings.nll_tokens]
    if variant.runtime == "llama.cpp":  # a second context keeping every position's logits
        from infir.export.llamacpp import LlamaCppModel

        model = LlamaCppModel(
            variant.path, n_ctx=max(settings.nll_tokens, 64), threads=settings.threads, logits_all=True
        )
    return round(model.mean_nll(ids), 5)


def _load(variant: Variant, settings: BenchSettings):
    if variant.runtime == "pytorch":
        from infir.export.torch_runtime import TorchModel

        return TorchModel(variant.path, variant.precision, settings.threads)
    from infir.export.llamacpp import LlamaCppModel

    # Room for the longest measurement (prompt + generation) whatever n_ctx says.
    n_ctx = max(
        settings.n_ctx, settings.prompt_tokens + settings.gen_tokens + 16, settings.agreement_tokens + 256
    )
    return LlamaCppModel(variant.path, n_ctx=n_ctx, threads=settings.threads)


def _accuracy(variant: Variant, model, settings: BenchSettings) -> dict:
    from infir.eval.config import TaskSpec
    from infir.eval.runner import build_task, run_task

    spec = TaskSpec(name=settings.task, limit=settings.task_limit)
    if variant.runtime == "pytorch":
        from infir.eval.backends import HFBackend

        backend = HFBackend(model.model, model.tokenizer)
    else:
        from transformers import AutoTokenizer

        from infir.export.llamacpp import LlamaCppBackend

        if variant.tokenizer_dir is None:
            return {
                "error": "accuracy of a GGUF needs the reference model folder (--reference) for its prompts"
            }
        backend = LlamaCppBackend(model, AutoTokenizer.from_pretrained(variant.tokenizer_dir))
    result = run_task(backend, spec, chat=settings.chat, batch_size=1, show_progress=False)
    metric = build_task(spec).primary_metric
    return {
        "task": settings.task,
        "metric": metric,
        "value": result.metrics.get(metric),
        "n": result.metrics["n"],
    }


def measure_variant(variant: Variant, settings: BenchSettings) -> dict:
    """Everything measured for one variant (run in a fresh process by `run_bench`)."""
    t0 = time.perf_counter()
    model = _load(variant, settings)
    load_seconds = time.perf_counter() - t0
    load_peak = peak_rss_mb()
    reset_ok = reset_peak_rss()

    ids = model.tokenize(_fixed_text())
    if len(ids) < settings.prompt_tokens:
        raise ValueError(
            f"the fixed text has {len(ids)} tokens, fewer than prompt_tokens={settings.prompt_tokens}"
        )
    ids = ids[: settings.prompt_tokens]
    model.greedy(ids[:8], 4, stop_at_eog=False)  # warm-up: thread pools, first allocations
    prefill, decode = [], []
    for _ in range(settings.repeats):
        prefill.append(model.greedy(ids, 1, stop_at_eog=False).prefill_seconds)
        run = model.greedy(ids[:16], settings.gen_tokens, stop_at_eog=False)
        decode.append(run.decode_seconds / max(1, run.decode_steps))
    continuations = []
    for prompt in settings.agreement_prompts:
        prompt_ids = model.tokenize(prompt)
        run = model.greedy(prompt_ids, settings.agreement_tokens, stop_at_eog=False)
        continuations.append(
            {"prompt_ids": prompt_ids, "token_ids": run.token_ids, "text": model.detokenize(run.token_ids)}
        )
    out = {
        **asdict(variant),
        "file_bytes": _size(Path(variant.path), variant.runtime),
        "load_seconds": round(load_seconds, 2),
        "prompt_tokens_per_s": round(settings.prompt_tokens / statistics.median(prefill), 1),
        "gen_tokens_per_s": round(1.0 / statistics.median(decode), 1),
        "peak_rss_mb": peak_rss_mb(),
        "load_peak_rss_mb": load_peak,
        "peak_rss_reset": reset_ok,
        "continuations": continuations,
    }
    out["heldout_nll"] = _heldout_nll(variant, model, settings)
    if settings.task:
        out["accuracy"] = _accuracy(variant, model, settings)
    return out


def _size(path: Path, runtime: str) -> int:
    if runtime == "llama.cpp":
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.glob("*.safetensors"))


# ---- all variants ----------------------------------------------------------------------------------
def agreement(reference: list[dict], other: list[dict]) -> dict:
    """Per prompt, how many leading generated tokens match the reference's (and whether prompts matched)."""
    prefixes, prompts_match = [], True
    for ref, got in zip(reference, other):
        prompts_match &= ref["prompt_ids"] == got["prompt_ids"]
        n = 0
        for a, b in zip(ref["token_ids"], got["token_ids"]):
            if a != b:
                break
            n += 1
        prefixes.append(n)
    total = len(reference[0]["token_ids"]) if reference else 0
    return {
        "tokens": total,
        "matching_prefix": prefixes,
        "prompt_ids_match": prompts_match,
        "exact": prompts_match and all(p == total for p in prefixes),
    }


def run_bench(variants: list[Variant], settings: BenchSettings, log=print) -> BenchResult:
    import torch

    if settings.threads is None:
        settings.threads = torch.get_num_threads()
    result = BenchResult(settings={k: v for k, v in asdict(settings).items()})
    spawn = get_context("spawn")
    for variant in variants:
        if variant.runtime == "llama.cpp":
            from infir.export.llamacpp import INSTALL_HINT, llama_cpp_available

            if not llama_cpp_available():
                result.notes.append(f"{variant.name} skipped: {INSTALL_HINT}")
                log(result.notes[-1])
                continue
        log(f"bench-edge: {variant.name} ({variant.path}) ...")
        with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
            measured = pool.submit(measure_variant, variant, settings).result()
        log(
            f"  prompt {measured['prompt_tokens_per_s']} tok/s, "
            f"generation {measured['gen_tokens_per_s']} tok/s, "
            f"peak {measured['peak_rss_mb']} MB"
        )
        result.variants.append(measured)
    _compare(result)
    return result


def _compare(result: BenchResult) -> None:
    base = next((v for v in result.variants if v["name"] == "torch-fp32"), None)
    if base is None:
        result.notes.append("no torch-fp32 variant (give the HF model folder): no agreement or speedup")
        return
    base_acc = (base.get("accuracy") or {}).get("value")
    for v in result.variants:
        v["agreement"] = agreement(base["continuations"], v["continuations"])
        v["heldout_nll_delta_vs_fp32"] = round(v["heldout_nll"] - base["heldout_nll"], 5)
        acc = v.get("accuracy") or {}
        if base_acc is not None and acc.get("value") is not None:
            acc["delta_vs_fp32"] = round(acc["value"] - base_acc, 4)
        if v is not base:
            result.speedup_vs_pytorch[v["name"]] = round(v["gen_tokens_per_s"] / base["gen_tokens_per_s"], 2)


def write_result(result: BenchResult, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    os.replace(tmp, path)
    return path
