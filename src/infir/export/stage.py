"""The recipe's export stage: GGUF files and bf16 safetensors of the last trained checkpoint, then the
edge benchmark.

Writes into `<run-dir>/export/`:
  model-<quant>.gguf   one per `export.quants` (llama.cpp; tokenizer and chat template inside)
  mmproj-f16.gguf      the vision tower + projector, when the source is a LLaVA model
  hf/                  bf16 safetensors + tokenizer (when `hf` is in `export.formats`)
  edge.json            the edge benchmark (`infir.export.edge_bench.BenchResult`; rows via
                       `infir.export.report.edge_rows`)
and returns a summary naming the files and the headline figures.
"""

from __future__ import annotations

import logging
from pathlib import Path

from infir.export.config import ExportConfig
from infir.run import FINAL, StageContext
from infir.stages import chat_by_default, checkpoint_stages

log = logging.getLogger("infir.export")


def resolve_source(ctx: StageContext, cfg: ExportConfig) -> tuple[str, Path]:
    """(name, folder) of the checkpoint to export."""
    trained = checkpoint_stages()[::-1]  # `auto`: the last one that completed
    if cfg.source == "auto":
        for stage in trained:
            if ctx.has_checkpoint(stage):
                return stage, ctx.checkpoint_of(stage)
        raise FileNotFoundError(
            f"export: no trained stage with a final checkpoint in {ctx.run_dir} "
            f"(looked for {', '.join(f'{s}/{FINAL}' for s in trained)})"
        )
    if cfg.source in trained:
        return cfg.source, ctx.checkpoint_of(cfg.source)
    folder = Path(cfg.source)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(
            f"export.source {cfg.source!r}: not a trained stage ({', '.join(trained)}) "
            "nor a model folder with config.json"
        )
    return folder.name, folder


def is_llava(model_dir: Path) -> bool:
    import json

    return json.loads((model_dir / "config.json").read_text()).get("model_type") == "llava"


def run(ctx: StageContext) -> dict:
    from infir.export.edge_bench import BenchSettings, find_variants, run_bench, write_result
    from infir.export.gguf_export import export_gguf
    from infir.export.quantize import export_hf_bf16

    cfg: ExportConfig = ctx.recipe.export
    name, source = resolve_source(ctx, cfg)
    out = ctx.stage_dir
    out.mkdir(parents=True, exist_ok=True)
    say = log.info
    summary: dict = {"source": name, "source_dir": str(source), "gguf": [], "hf": None}
    if "gguf" in cfg.formats:
        for quant in cfg.quants:
            result = export_gguf(
                source,
                out / f"model-{quant}.gguf",
                quant,
                name=f"{ctx.recipe.name}-{name}",
                tokenizer_pre=cfg.tokenizer_pre,
                log=say,
            )
            summary["gguf"].append({**result.to_dict(), "path": Path(result.path).name})
        if is_llava(source):
            from infir.export.mmproj import export_mmproj

            summary["mmproj"] = {
                **export_mmproj(source, out / "mmproj-f16.gguf", log=say).to_dict(),
                "path": "mmproj-f16.gguf",
            }
    if "hf" in cfg.formats:
        hf = export_hf_bf16(source, out / "hf", log=say)
        summary["hf"] = {**hf, "path": "hf"}
    if cfg.bench.enabled and is_llava(source):
        summary["edge"] = {"notes": ["the edge benchmark measures causal language models; skipped for LLaVA"]}
    elif cfg.bench.enabled:
        b = cfg.bench
        settings = BenchSettings(
            prompt_tokens=b.prompt_tokens,
            gen_tokens=b.gen_tokens,
            repeats=b.repeats,
            agreement_tokens=b.agreement_tokens,
            threads=b.threads or ctx.recipe.runtime.threads,
            task=b.task,
            task_limit=b.task_limit,
            chat=b.chat if b.chat is not None else chat_by_default(name),
        )
        ggufs = [out / g["path"] for g in summary["gguf"]]
        result = run_bench(find_variants(ggufs, int8=b.int8, reference=source), settings, log=say)
        write_result(result, out / "edge.json")
        summary["edge"] = {
            "file": "edge.json",
            "speedup_vs_pytorch": result.speedup_vs_pytorch,
            "gen_tokens_per_s": {v["name"]: v["gen_tokens_per_s"] for v in result.variants},
            "greedy_exact": {v["name"]: v.get("agreement", {}).get("exact") for v in result.variants},
            "notes": result.notes,
        }
    return summary
