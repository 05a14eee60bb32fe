"""A shrunken tiny recipe through every stage, via the CLI, checking each stage's outputs."""

import json
import subprocess
import sys

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

SHRINK = [
    "curate.sources.0.kwargs.max_docs=40",
    "curate.sources.1.kwargs.max_docs=25",
    "curate.sources.2.kwargs.docs_per_family=12",
    "tokenizer.vocab_size=600",
    "model.preset=null",
    "model.hidden_size=64",
    "model.num_layers=2",
    "model.num_heads=2",
    "model.intermediate_size=128",
    "model.max_position_embeddings=256",
    "pretrain.max_steps=12",
    "pretrain.global_batch_size=4",
    "pretrain.micro_batch_size=2",
    "pretrain.seq_len=128",
    "pretrain.save_every=5",
    "pretrain.val_every=6",
    "anneal.max_steps=6",
    "anneal.global_batch_size=4",
    "anneal.micro_batch_size=4",
    "anneal.seq_len=128",
    "anneal.save_every=0",
    "anneal.log_every=1",
    "synth.seeds.0.per_family=10",
    "sft.epochs=1",
    "sft.global_batch_size=4",
    "sft.micro_batch_size=4",
    "sft.seq_len=256",
    "sft.save_every=0",
    "rl.max_steps=2",
    "rl.prompts.per_family=8",
    "rl.group_size=2",
    "rl.prompts_per_step=2",
    "rl.micro_batch_size=4",
    "rl.seq_len=128",
    "rl.max_new_tokens=16",
    "rl.save_every=0",
    "eval.tasks.0.options.n=3",
    "eval.tasks.0.max_new_tokens=24",
    "eval.batch_size=8",
    "export.bench.task_limit=2",
    "export.bench.repeats=1",
    "export.bench.gen_tokens=8",
    "export.bench.prompt_tokens=16",
]
STAGES = ["curate", "tokenize", "pretrain", "anneal", "synth", "sft", "rl", "eval", "export", "report"]


def infir(*args, cwd, env=None):
    return subprocess.run(
        [sys.executable, "-m", "infir", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=900
    )


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    out = infir("run", "tiny", "--run-dir", str(root / "run"), *SHRINK, cwd=root)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-5000:]
    assert f"report: {(root / 'run' / 'report' / 'index.html').resolve()}" in out.stdout
    return root / "run"


def test_every_stage_wrote_config_summary_and_marker(run_dir):
    for stage in STAGES:
        d = run_dir / stage
        assert (d / "config.yaml").is_file() and (d / "_COMPLETE").is_file(), stage
        assert isinstance(json.loads((d / "summary.json").read_text()), dict), stage


def test_curate_outputs_and_funnel_invariant(run_dir):
    summary = json.loads((run_dir / "curate" / "summary.json").read_text())
    assert list((run_dir / "curate" / "kept").glob("*.jsonl.gz"))
    for step in summary["steps"]:
        dropped = sum(step["dropped"].values())
        assert step["docs_in"] == step["docs_out"] + dropped, step["name"]
    assert (run_dir / "curate" / "mixtures.json").is_file()


def test_training_stages_save_loadable_checkpoints_and_metrics(run_dir):
    for stage, steps in (("pretrain", 12), ("anneal", 6)):
        summary = json.loads((run_dir / stage / "summary.json").read_text())
        assert summary["steps"] == steps
        lines = [json.loads(x) for x in (run_dir / stage / "metrics.jsonl").read_text().splitlines()]
        assert {"step", "loss", "lr", "grad_norm", "tokens", "tokens_per_s", "mfu"} <= lines[0].keys()
    for stage in ("pretrain", "anneal", "sft", "rl"):
        model = AutoModelForCausalLM.from_pretrained(run_dir / stage / "final")
        tok = AutoTokenizer.from_pretrained(run_dir / stage / "final")
        assert model.config.vocab_size >= len(tok)
    anneal_lrs = [
        json.loads(x)["lr"]
        for x in (run_dir / "anneal" / "metrics.jsonl").read_text().splitlines()
        if "lr" in json.loads(x)
    ]
    assert anneal_lrs[-1] < anneal_lrs[0]
    sft_tok = AutoTokenizer.from_pretrained(run_dir / "sft" / "final")
    assert sft_tok.eos_token == "<|im_end|>" and sft_tok.chat_template


def test_eval_has_results_for_each_trained_stage(run_dir):
    results = json.loads((run_dir / "eval" / "summary.json").read_text())["results"]
    assert set(results) == {"pretrain", "anneal", "sft", "rl"}
    for stage in results:
        assert 0.0 <= results[stage]["reasoning"]["accuracy"] <= 1.0
        assert (run_dir / "eval" / stage / "reasoning.samples.jsonl").is_file()


def test_report_has_the_plots(run_dir):
    html = (run_dir / "report" / "index.html").read_text()
    for png in ("funnel.png", "loss.png", "reward.png", "eval.png"):
        assert (run_dir / "report" / png).stat().st_size > 1000
        assert png in html


def test_rerun_skips_everything_and_a_changed_stage_reruns_downstream(run_dir):
    out = infir("run", "tiny", "--run-dir", str(run_dir), *SHRINK, cwd=run_dir.parent)
    assert out.returncode == 0, out.stderr[-3000:]
    assert all(f"skipped {s}:" in out.stderr for s in STAGES), out.stderr[-3000:]
    out = infir(
        "run",
        "tiny",
        "--run-dir",
        str(run_dir),
        *[s for s in SHRINK if not s.startswith("sft.epochs")],
        "sft.epochs=2",
        cwd=run_dir.parent,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    for s in ("curate", "tokenize", "pretrain", "anneal", "synth"):
        assert f"skipped {s}:" in out.stderr
    for s in ("sft", "rl", "eval", "export", "report"):
        assert f"skipped {s}:" not in out.stderr


def test_synth_writes_verified_messages_that_sft_trains_on(run_dir):
    synth = json.loads((run_dir / "synth" / "summary.json").read_text())
    rows = [json.loads(x) for x in (run_dir / "synth" / "sft.jsonl").read_text().splitlines()]
    assert rows and all(r["messages"][-1]["role"] == "assistant" for r in rows)
    assert synth  # counts per step
    sft = json.loads((run_dir / "sft" / "summary.json").read_text())
    assert sft["conversations"]["kept"] >= len(rows)


def test_export_writes_gguf_files_and_the_edge_benchmark(run_dir):
    import gguf

    for quant in ("f16", "q8_0", "q4_0"):
        reader = gguf.GGUFReader(run_dir / "export" / f"model-{quant}.gguf")
        assert any(t.name == "token_embd.weight" for t in reader.tensors)
    edge = json.loads((run_dir / "export" / "edge.json").read_text())
    assert {v["name"] for v in edge["variants"]} >= {"torch-fp32"}
    assert "Edge deployment" in (run_dir / "report" / "index.html").read_text()


def test_pretraining_again_gives_the_same_model(run_dir, tmp_path):
    """The recipe's seed fixes the initial weights and the data order: a second pretraining on the same
    tokenized data reproduces the first one's losses and weights."""
    import shutil

    from safetensors.torch import load_file

    again = tmp_path / "again"
    again.mkdir()
    for part in ("curate", "tokenize", "recipe.yaml"):
        src = run_dir / part
        (shutil.copytree if src.is_dir() else shutil.copy)(src, again / part)
    out = infir("pretrain", "tiny", "--run-dir", str(again), *SHRINK, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]

    def losses(d):
        return [
            r["loss"]
            for r in map(json.loads, (d / "pretrain" / "metrics.jsonl").read_text().splitlines())
            if "loss" in r
        ]

    assert losses(again) == losses(run_dir) and losses(run_dir)
    first = load_file(run_dir / "pretrain" / "final" / "model.safetensors")
    second = load_file(again / "pretrain" / "final" / "model.safetensors")
    assert first.keys() == second.keys() and all(first[k].equal(second[k]) for k in first)
