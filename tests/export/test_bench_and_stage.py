"""The edge benchmark on the PyTorch variants, the CLI, the report rows and the export stage.

These run without llama.cpp; `test_llamacpp.py` covers the GGUF variants when it is installed.
"""

from __future__ import annotations

import json
import types

import pytest

from infir.export.cli import main
from infir.export.config import EdgeBenchConfig, ExportConfig
from infir.export.edge_bench import BenchSettings, find_variants, run_bench, write_result
from infir.export.report import EDGE_COLUMNS, edge_rows


def test_cli_export_writes_gguf_and_hf(tmp_path, tied_model, capsys):
    assert (
        main(
            [
                "--model",
                str(tied_model),
                "--format",
                "gguf",
                "--quant",
                "q8_0",
                "--out",
                str(tmp_path / "m.gguf"),
            ]
        )
        == 0
    )
    assert (tmp_path / "m.gguf").stat().st_size > 0
    assert main(["export", "--model", str(tied_model), "--format", "hf", "--out", str(tmp_path / "hf")]) == 0
    assert (tmp_path / "hf" / "model.safetensors").is_file() and (
        tmp_path / "hf" / "tokenizer.json"
    ).is_file()


def test_cli_reports_bad_model_folder(tmp_path, capsys):
    assert main(["--model", str(tmp_path), "--out", str(tmp_path / "m.gguf")]) == 2
    assert "config.json" in capsys.readouterr().err
    assert main(["bench-edge", "--model", str(tmp_path / "missing.gguf")]) == 2


def test_variants_from_paths(tmp_path, tied_model, gguf_factory):
    gguf_path = gguf_factory("tied", "q4_0")
    variants = find_variants([tied_model, gguf_path])
    assert [v.name for v in variants] == ["torch-fp32", "torch-int8", "llamacpp-q4_0"]
    assert variants[2].tokenizer_dir == str(tied_model)
    assert [v.name for v in find_variants([gguf_path.parent], int8=False)] == ["llamacpp-q4_0"]


def test_bench_measures_pytorch_variants(tmp_path, tied_model):
    settings = BenchSettings(
        prompt_tokens=32,
        gen_tokens=8,
        repeats=1,
        agreement_tokens=8,
        threads=1,
        task="reasoning",
        task_limit=3,
    )
    result = run_bench(find_variants([tied_model]), settings, log=lambda *_: None)
    fp32, int8 = result.variants
    assert (fp32["name"], int8["name"]) == ("torch-fp32", "torch-int8")
    for v in result.variants:
        assert v["prompt_tokens_per_s"] > 0 and v["gen_tokens_per_s"] > 0 and v["peak_rss_mb"] > 50
        assert len(v["continuations"]) == 3 and all(len(c["token_ids"]) == 8 for c in v["continuations"])
        assert v["accuracy"]["task"] == "reasoning" and v["accuracy"]["n"] == 3
    assert fp32["agreement"] == {
        "tokens": 8,
        "matching_prefix": [8, 8, 8],
        "prompt_ids_match": True,
        "exact": True,
    }
    assert 0 < fp32["heldout_nll"] < 6 and fp32["heldout_nll_delta_vs_fp32"] == 0
    assert abs(int8["heldout_nll_delta_vs_fp32"]) < 0.2
    assert int8["agreement"]["prompt_ids_match"]
    assert int8["accuracy"]["delta_vs_fp32"] == pytest.approx(
        int8["accuracy"]["value"] - fp32["accuracy"]["value"]
    )
    # the ratio is reported rounded to 2 decimals: a relative tolerance fails for ratios under 0.5
    assert result.speedup_vs_pytorch["torch-int8"] == pytest.approx(
        int8["gen_tokens_per_s"] / fp32["gen_tokens_per_s"], abs=0.005 + 1e-9
    )

    path = write_result(result, tmp_path / "edge.json")
    rows = edge_rows(tmp_path)
    assert [r["variant"] for r in rows] == ["torch-fp32", "torch-int8"]
    assert set(rows[0]) == set(EDGE_COLUMNS)
    assert rows[0]["greedy_agreement"] == "8/8/8 of 8" and rows[0]["speedup_vs_pytorch"] == 1.0
    assert json.loads(path.read_text())["settings"]["prompt_tokens"] == 32
    assert edge_rows(tmp_path / "absent") == []


def _context(run_dir, cfg: ExportConfig):
    from infir.config import RuntimeConfig
    from infir.export.stage import run
    from infir.run import Stage, StageContext

    recipe = types.SimpleNamespace(name="t", export=cfg, runtime=RuntimeConfig())
    return StageContext(recipe=recipe, run_dir=run_dir, stage=Stage("export", ("export",), (), run))


def test_stage_exports_last_trained_checkpoint(tmp_path, tied_model):
    import shutil

    from infir.export.stage import run
    from infir.run import MARKER

    for stage in ("pretrain", "sft"):
        shutil.copytree(tied_model, tmp_path / stage / "final")
        (tmp_path / stage / MARKER).write_text("x")
    cfg = ExportConfig(quants=["q8_0", "q4_0"], bench=EdgeBenchConfig(enabled=False))
    summary = run(_context(tmp_path, cfg))
    assert summary["source"] == "sft"
    assert [g["path"] for g in summary["gguf"]] == ["model-q8_0.gguf", "model-q4_0.gguf"]
    assert (tmp_path / "export" / "model-q4_0.gguf").is_file()
    assert (tmp_path / "export" / "hf" / "model.safetensors").is_file()
    assert "edge" not in summary


def test_stage_without_checkpoint_fails_clearly(tmp_path):
    from infir.export.stage import run

    with pytest.raises(FileNotFoundError, match="no trained stage"):
        run(_context(tmp_path, ExportConfig()))
    with pytest.raises(FileNotFoundError, match="not a trained stage"):
        run(_context(tmp_path, ExportConfig(source=str(tmp_path / "nowhere"))))


def test_variants_need_one_reference_model(tmp_path, model_factory, gguf_factory):
    tied, untied = model_factory("tied"), model_factory("untied")
    with pytest.raises(FileNotFoundError, match="several model folders"):
        find_variants([tied, untied])
    export_dir = tmp_path / "export"
    export_dir.mkdir()
    (export_dir / "model-q8_0.gguf").write_bytes(gguf_factory("tied", "q8_0").read_bytes())
    import shutil

    shutil.copytree(tied, export_dir / "hf")
    # A stage's export folder: its hf/ copy is the reference unless one is named.
    assert [v.path for v in find_variants([export_dir])][:1] == [str(export_dir / "hf")]
    named = find_variants([export_dir], reference=tied)
    assert [v.path for v in named][:2] == [str(tied), str(tied)]


@pytest.mark.slow
def test_stage_with_benchmark_writes_edge_json(tmp_path, tied_model):
    import shutil

    from infir.export.llamacpp import llama_cpp_available
    from infir.export.stage import run
    from infir.run import MARKER

    shutil.copytree(tied_model, tmp_path / "pretrain" / "final")
    (tmp_path / "pretrain" / MARKER).write_text("x")
    cfg = ExportConfig(
        formats=["gguf"],
        quants=["f16", "q4_0"],
        bench=EdgeBenchConfig(
            prompt_tokens=32,
            gen_tokens=8,
            repeats=1,
            agreement_tokens=16,
            task="reasoning",
            task_limit=2,
            threads=1,
        ),
    )
    summary = run(_context(tmp_path, cfg))
    rows = edge_rows(tmp_path / "export")
    names = [r["variant"] for r in rows]
    assert names[:2] == ["torch-fp32", "torch-int8"]
    if llama_cpp_available():
        assert names[2:] == ["llamacpp-f16", "llamacpp-q4_0"]
        assert summary["edge"]["greedy_exact"]["llamacpp-f16"] is True
        assert set(summary["edge"]["speedup_vs_pytorch"]) == {"torch-int8", "llamacpp-f16", "llamacpp-q4_0"}
    else:
        assert any("llama-cpp-python" in n for n in summary["edge"]["notes"])


def test_stage_runs_under_the_run_directory_contract(tmp_path, tied_model):
    """The stage as the lead's stage table would declare it: config written, marker set, rerun skipped."""
    import shutil

    from pydantic import Field

    from infir.config import Recipe
    from infir.run import MARKER, Stage, run_stage, write_json
    from infir.stages import _lazy

    class RecipeWithExport(Recipe):
        export: ExportConfig = Field(default_factory=ExportConfig)

    recipe = RecipeWithExport(
        stages=["pretrain", "export"],
        export=ExportConfig(formats=["gguf"], quants=["q8_0"], bench=EdgeBenchConfig(enabled=False)),
    )
    stage = Stage(
        "export",
        ("export",),
        lambda r: tuple(s for s in ("pretrain", "anneal", "sft", "rl") if s in r.stages),
        _lazy("infir.export.stage"),
        help="GGUF (f16/q8_0/q4_0), bf16 safetensors and the edge benchmark",
    )
    shutil.copytree(tied_model, tmp_path / "pretrain" / "final")
    write_json(tmp_path / "pretrain" / MARKER, {"fingerprint": "abc", "finished": 0})
    summary = run_stage(recipe, stage, tmp_path, log=lambda *_: None)
    assert summary["gguf"][0]["path"] == "model-q8_0.gguf"
    assert (tmp_path / "export" / "config.yaml").read_text().startswith("export:")
    messages = []
    run_stage(recipe, stage, tmp_path, log=messages.append)
    assert messages and messages[0].startswith("skipped export")
