"""`recipes/infir-1b-rehearsal.yaml`: every stage and code path of `infir-1b.yaml` at CPU size, under torchrun.

Hugging Face `datasets` read local parquet files in the schemas of the datasets the 1B recipe names; the
tokenizer and model load by path (Llama-3.2's grouped-query attention, llama3 RoPE scaling and tied
embeddings, at tiny width); pretraining, annealing and SFT run on 2 ranks with FSDP2 and sharded
checkpoints; synth asks an OpenAI-compatible teacher on loopback (with an API key by variable name);
RL trains on GSM8K's train split; evaluation runs GSM8K, MATH-500, MMLU-STEM, HumanEval and MBPP with
decontamination against all of them; TensorBoard logs; export writes GGUF; the report is written.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from infir.config import load_recipe
from tests.ports import free_port

pytestmark = pytest.mark.shared
SECRET = "rehearsal-secret-key-value"


@pytest.fixture(scope="module")
def rehearsal(shared, tmp_path_factory):
    from infir.synth.loopback import LoopbackServer, ReferenceTeacher
    from infir.synth.config import DEFAULT_INSTRUCTIONS
    from tests.e2e.rehearsal_data import build

    root = build(tmp_path_factory.mktemp("rehearsal"), shared)
    gsm8k = [
        json.loads(x)
        for x in (shared / "benchmarks" / "gsm8k" / "train.jsonl").read_text().splitlines()[:160]
    ]
    solver = ReferenceTeacher.from_gsm8k(gsm8k, wrong_fraction=0.25, strip=(DEFAULT_INSTRUCTIONS["math"],))

    def teacher(body: dict) -> str:
        prompt = " ".join(m["content"] for m in body.get("messages", []))
        if "Educational score" in prompt:  # the inputs stage's annotation prompt: more words, more value
            return f"Educational score: {min(5, len(prompt.split()) // 150)}"
        return solver(body)

    env = {**os.environ, "OMP_NUM_THREADS": "1", "REHEARSAL_TEACHER_KEY": SECRET}
    with LoopbackServer(teacher, api_key=SECRET) as server:
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc-per-node",
            "2",
            "--master-port",
            str(free_port()),
            "-m",
            "infir",
            "run",
            "infir-1b-rehearsal",
            f"synth.teacher.base_url={server.url}",
            f"inputs.annotate.teacher.base_url={server.url}",
        ]
        done = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=1500)
        asked = server.stats.answered
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]
    return root, root / "runs" / "infir-1b-rehearsal", done, asked


def summary(run: Path, stage: str) -> dict:
    return json.loads((run / stage / "summary.json").read_text())


def test_every_stage_of_the_1b_recipe_is_rehearsed(rehearsal):
    _, run, _, _ = rehearsal
    real = load_recipe("infir-1b", []).stages
    assert load_recipe("infir-1b-rehearsal", []).stages == real
    assert sorted(p.parent.name for p in run.rglob("_COMPLETE")) == sorted(real)


def test_the_inputs_stage_made_what_curate_reads(rehearsal):
    root, run, _, _ = rehearsal
    for name in (
        "math_positive",
        "math_negative",
        "stackoverflow_positive",
        "code_negative",
        "quality_annotations",
    ):
        assert (root / "made" / f"{name}.jsonl").stat().st_size > 0, name
    labels = [json.loads(x) for x in (root / "made" / "quality_annotations.jsonl").read_text().splitlines()]
    assert len({r["score"] for r in labels}) > 1
    assert summary(run, "curate")["steps"]


def test_hf_datasets_tokenizer_and_llama32_model_by_path(rehearsal):
    _, run, _, _ = rehearsal
    domains = summary(run, "curate")["domains"]
    assert all(domains[d]["docs"] > 0 for d in ("web", "math", "code"))
    tok = summary(run, "tokenize")["tokenizer"]
    assert tok["source"] == "loaded" and tok["path_or_name"] == "rehearsal/llama-3.2-tiny"
    config = json.loads((run / "pretrain" / "final" / "config.json").read_text())
    assert config["num_key_value_heads"] == 2 and config["num_attention_heads"] == 4
    assert config["rope_parameters"]["rope_type"] == "llama3" and config["tie_word_embeddings"] is True


def test_training_ran_sharded_on_two_ranks_with_sharded_checkpoints_and_tensorboard(rehearsal):
    _, run, _, _ = rehearsal
    for stage in ("pretrain", "anneal", "sft"):
        assert summary(run, stage)["world_size"] == 2, stage
        steps = sorted((run / stage / "checkpoints").glob("step-*"))
        assert steps and (steps[-1] / "state" / ".metadata").is_file(), stage
        assert len(list((steps[-1] / "state").glob("*.distcp"))) == 2, stage  # one shard per rank
        assert list((run / stage / "tensorboard").glob("events.out.tfevents.*")), stage
    assert list((run / "rl" / "tensorboard").glob("events.out.tfevents.*"))


def test_synth_asked_the_loopback_teacher_and_sft_read_its_output(rehearsal):
    root, run, _, asked = rehearsal
    synth = summary(run, "synth")
    assert asked > 0 and synth["verify"]["verified"] > 0
    assert synth["verify"]["rejected"]  # the teacher answers a quarter wrong: verification drops them
    sft = summary(run, "sft")
    assert sft["conversations"]["kept"] > 160  # the two chat datasets (160 rows) plus synth's conversations
    for path in [*run.rglob("*.yaml"), *run.rglob("*.json"), *run.rglob("*.jsonl")]:
        assert SECRET not in path.read_text(errors="ignore"), path


def test_rl_eval_on_the_real_benchmarks_with_decontamination_export_and_report(rehearsal):
    _, run, _, _ = rehearsal
    assert summary(run, "rl")["steps"] == 2 and summary(run, "rl")["task"] == "gsm8k"
    results = summary(run, "eval")["results"]
    assert set(results) == {"pretrain", "anneal", "sft", "rl"}
    for stage, tasks in results.items():
        assert set(tasks) == {"mmlu", "gsm8k", "math500", "humaneval", "mbpp"}, stage
    benchmarks = {"gsm8k", "math500", "mmlu", "humaneval", "mbpp"}
    assert set(json.loads((run / "curate" / "_work" / "decontam.json").read_text())["index"]) == benchmarks
    assert set(summary(run, "synth")["decontam_index"]) == benchmarks
    export = summary(run, "export")
    assert [g["path"] for g in export["gguf"]] == ["model-f16.gguf", "model-q8_0.gguf"]
    assert (run / "report" / "index.html").is_file()
