"""`infir export` and `infir bench-edge` in their direct forms (no run directory).

infir export --model DIR --format gguf --quant f16|q8_0|q4_0 --out FILE [--tokenizer-pre NAME]
infir export --model DIR --format hf --out DIR                      (bf16 safetensors + tokenizer)
infir export --model LLAVA_DIR --format mmproj --out FILE           (vision tower + projector for llama.cpp)
infir bench-edge --model FILE_OR_DIR [--model ...] [--reference DIR] [--task reasoning --limit 20]
                 [--prompt-tokens 128] [--gen-tokens 64] [--repeats 3] [--threads N] [--no-int8]
                 [--output edge.json]

`main(argv)` takes either form's arguments; a leading `export` or `bench-edge` picks the command
(without one, the arguments are `export`'s).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

console = Console(stderr=True)


def _export_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="infir export", description="Export a trained model for deployment.")
    p.add_argument(
        "--model", required=True, type=Path, help="Hugging Face model folder (config + safetensors)"
    )
    p.add_argument(
        "--format",
        choices=("gguf", "hf", "mmproj"),
        default="gguf",
        help="gguf: the language model; mmproj: a LLaVA model's vision side; hf: bf16 safetensors",
    )
    p.add_argument("--quant", choices=("f16", "q8_0", "q4_0"), default="f16", help="GGUF weight type")
    p.add_argument("--out", required=True, type=Path, help="output .gguf file (gguf, mmproj) or folder (hf)")
    p.add_argument(
        "--tokenizer-pre", help="llama.cpp pre-tokenizer name (default: detected from the tokenizer)"
    )
    p.add_argument("--name", help="model name stored in the GGUF (default: the model folder's name)")
    return p


def _bench_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="infir bench-edge", description="Speed, memory and accuracy change of edge variants of a model."
    )
    p.add_argument(
        "--model",
        required=True,
        action="append",
        type=Path,
        help="a .gguf file, a Hugging Face model folder, or a folder of them (repeatable)",
    )
    p.add_argument(
        "--reference",
        type=Path,
        help="unquantized HF model folder the others are compared with (default: the HF folder given)",
    )
    p.add_argument("--task", help="eval task for the accuracy change (e.g. reasoning); default: none")
    p.add_argument("--limit", type=int, default=50, help="documents of --task to evaluate")
    p.add_argument("--chat", action="store_true", help="chat prompts for --task")
    p.add_argument("--prompt-tokens", type=int, default=128)
    p.add_argument("--gen-tokens", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--agreement-tokens", type=int, default=32)
    p.add_argument("--threads", type=int, help="threads for every runtime (default: torch's default)")
    p.add_argument("--no-int8", action="store_true", help="skip PyTorch int8 dynamic quantization")
    p.add_argument("--output", type=Path, default=Path("edge.json"))
    return p


def cmd_export(argv: list[str]) -> int:
    from infir.export.gguf_export import ExportError, export_gguf
    from infir.export.gguf_vocab import VocabError
    from infir.export.quantize import export_hf_bf16

    args = _export_parser().parse_args(argv)
    say = console.print
    try:
        if args.format == "hf":
            export_hf_bf16(args.model, args.out, log=say)
        elif args.format == "mmproj":
            from infir.export.mmproj import export_mmproj

            export_mmproj(args.model, args.out, log=say)
        else:
            if args.out.suffix != ".gguf":
                raise ExportError(f"--out {args.out}: give a .gguf file name")
            export_gguf(
                args.model, args.out, args.quant, name=args.name, tokenizer_pre=args.tokenizer_pre, log=say
            )
    except (ExportError, VocabError, FileNotFoundError) as e:
        console.print(f"[red]error:[/red] {escape(str(e))}", highlight=False)
        return 2
    print(args.out.resolve())
    return 0


def _table(result: dict) -> Table:
    from infir.export.report import EDGE_COLUMNS, edge_rows_from

    table = Table(title="infir bench-edge")
    for column in EDGE_COLUMNS:
        table.add_column(column)
    for row in edge_rows_from(result):
        table.add_row(*["" if row[c] is None else str(row[c]) for c in EDGE_COLUMNS])
    return table


def cmd_bench(argv: list[str]) -> int:
    from infir.export.edge_bench import BenchSettings, find_variants, run_bench, write_result

    args = _bench_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    settings = BenchSettings(
        prompt_tokens=args.prompt_tokens,
        gen_tokens=args.gen_tokens,
        repeats=args.repeats,
        agreement_tokens=args.agreement_tokens,
        threads=args.threads,
        task=args.task,
        task_limit=args.limit,
        chat=args.chat,
    )
    try:
        variants = find_variants(args.model, int8=not args.no_int8, reference=args.reference)
    except FileNotFoundError as e:
        console.print(f"[red]error:[/red] {escape(str(e))}", highlight=False)
        return 2
    result = run_bench(variants, settings, log=console.print)
    write_result(result, args.output)
    console.print(_table(result.to_dict()))
    for note in result.notes:
        console.print(f"note: {note}", highlight=False)
    print(json.dumps({"output": str(args.output), "speedup_vs_pytorch": result.speedup_vs_pytorch}))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bench-edge"]:
        return cmd_bench(argv[1:])
    if argv[:1] == ["export"]:
        return cmd_export(argv[1:])
    return cmd_export(argv)


if __name__ == "__main__":
    raise SystemExit(main())
