"""The `rl` stage under the run-directory contract, its prompts (train split, no eval overlap) and config."""

import json
import shutil
from types import SimpleNamespace

import pytest
import torch
from pydantic import ValidationError

from infir.config import Recipe, load_recipe
from infir.eval.registry import get_task
from infir.report.rewards import plot_reward_curve
from infir.rl import stage as rl_stage
from infir.rl.config import PromptConfig, RLConfig
from infir.run import MARKER, run_stage, write_json
from infir.stages import STAGES
from tests.rl.helpers import load

RL_STAGE = STAGES["rl"]


def _fake_sft_run(run_dir, model_dir):
    shutil.copytree(model_dir, run_dir / "sft" / "final")
    write_json(run_dir / "sft" / MARKER, {"fingerprint": "sft-fixture"})


def test_rl_stage_trains_from_sft_and_keeps_the_chat_model(chat_model_dir, tmp_path):
    torch.set_num_threads(1)
    run_dir = tmp_path / "run"
    _fake_sft_run(run_dir, chat_model_dir)
    recipe = Recipe.model_validate(
        {
            "stages": ["sft", "rl", "eval"],
            "runtime": {"device": "cpu"},
            "eval": {"tasks": [{"name": "reasoning", "options": {"n": 5, "families": ["chain_sum"]}}]},
            "rl": {
                "prompts": {"families": ["chain_sum"], "per_family": 40},
                "group_size": 4,
                "prompts_per_step": 2,
                "micro_batch_size": 4,
                "max_new_tokens": 8,
                "seq_len": 96,
                "max_steps": 3,
                "save_every": 2,
                "kl_coef": 0.05,
                "reward": {"format": 0.1},
                "optimizer": {"lr": 1e-3},
                "precision": "fp32",
            },
        }
    )
    summary = run_stage(recipe, RL_STAGE, run_dir, log=lambda m: None)
    assert summary["steps"] == 3 and summary["prompts"] == 40 and summary["dropped_eval_overlap"] == 0
    assert summary["chat"] is True and summary["init_from"] == str(run_dir / "sft" / "final")
    assert {"reward_first", "reward_last", "accuracy_first", "accuracy_last"} <= summary.keys()
    rows = [json.loads(x) for x in (run_dir / "rl" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert {
        "loss",
        "reward",
        "reward_std",
        "accuracy",
        "format",
        "completion_tokens",
        "truncated",
        "kl",
        "clip_frac",
        "zero_signal_groups",
        "rollout_s",
    } <= rows[0].keys()
    model, tok = load(run_dir / "rl" / "final")
    sft_model, sft_tok = load(chat_model_dir)
    assert tok.eos_token == "<|im_end|>" and tok.chat_template == sft_tok.chat_template
    assert model.generation_config.eos_token_id == sft_model.generation_config.eos_token_id
    assert any(not torch.equal(a, b) for a, b in zip(model.parameters(), sft_model.parameters()))
    assert (run_dir / "rl" / "config.yaml").is_file() and (run_dir / "rl" / MARKER).is_file()
    again = run_stage(recipe, RL_STAGE, run_dir, log=lambda m: None)  # complete and unchanged: skipped
    assert again == json.loads((run_dir / "rl" / "summary.json").read_text())
    assert (
        plot_reward_curve(rows, tmp_path / "reward.png") and (tmp_path / "reward.png").stat().st_size > 1000
    )
    assert not plot_reward_curve([{"step": 1, "loss": 2.0}], tmp_path / "none.png")


def test_rl_starts_from_sft_or_the_last_training_stage_before_it():
    from infir.stages import start_stage

    def start(stages, init_from="auto"):
        return start_stage(Recipe(stages=stages, rl={"init_from": init_from}), "rl")

    assert start(["pretrain", "anneal", "sft", "rl"]) == "sft"
    assert start(["pretrain", "anneal", "rl"]) == "anneal"
    assert start(["rl"]) is None
    assert start(["pretrain", "sft", "rl"], "pretrain") == "pretrain"
    assert start(["sft", "rl"], "some/checkpoint") is None
    assert RL_STAGE.upstream(Recipe(stages=["tokenize", "pretrain", "rl", "eval"])) == ("pretrain",)
    assert RL_STAGE.upstream(Recipe(stages=["rl"], rl={"init_from": "org/model"})) == ()


def test_the_tiny_recipe_runs_rl_after_sft():
    recipe = load_recipe("tiny")
    stages = recipe.stages
    assert "rl" in stages and stages.index("sft") < stages.index("rl") < stages.index("eval")
    assert RL_STAGE.upstream(recipe) == ("sft",)


def test_prompts_come_from_the_train_split_and_eval_overlaps_are_dropped(chat_model_dir, monkeypatch):
    from infir.data.reasoning import generate, is_heldout

    docs = rl_stage.prompt_docs(PromptConfig(families=["chain_sum"], per_family=30), "reasoning", {})
    assert len(docs) == 30 and not any(is_heldout(d["question"]) for d in docs)
    heldout = [p.to_dict() for p in generate("chain_sum", 4, 7, split="heldout")]
    monkeypatch.setattr(rl_stage, "prompt_docs", lambda *a: docs[:6] + heldout)
    recipe = Recipe.model_validate(
        {
            "stages": ["sft", "rl", "eval"],
            "eval": {
                "tasks": [{"name": "reasoning", "options": {"n": 4, "seed": 7, "families": ["chain_sum"]}}]
            },
            "rl": {"max_new_tokens": 16, "seq_len": 128},
        }
    )
    ctx = SimpleNamespace(recipe=recipe)
    model, tok = load(chat_model_dir)
    kept, ids, counts = rl_stage.build_prompts(ctx, recipe.rl, get_task("reasoning"), tok, model, chat=True)
    assert counts == {"prompts": 6, "generated": 10, "dropped_eval_overlap": 4, "dropped_too_long": 0}
    assert kept == docs[:6] and ids[0][-3:] == tok("<|im_start|>assistant\n")["input_ids"][-3:]


def test_keep_unsolved_keeps_what_the_policy_gets_wrong_greedily():
    from infir.eval.generate import Generation
    from infir.rl.rewards import Rewarder
    from infir.rl.rollout import SamplingSettings

    docs = rl_stage.prompt_docs(PromptConfig(families=["chain_sum"], per_family=6), "reasoning", {})
    wrong = {1, 4}

    class ScriptedEngine:
        def generate(self, prompts, settings, seed):
            assert settings.temperature == 0.0 and settings.group_size == 1  # greedy, one answer each
            answers = [int(d["answer"]) + (1 if i in wrong else 0) for i, d in enumerate(docs)]
            return [Generation(f"The answer is {a}.", "eos") for a in answers[: len(prompts)]]

    settings = SamplingSettings(group_size=8, max_new_tokens=16, temperature=0.7)
    ids = [[i] for i in range(len(docs))]
    kept, kept_ids, dropped = rl_stage.unsolved_prompts(
        docs, ids, ScriptedEngine(), Rewarder(get_task("reasoning")), settings
    )
    assert kept == [docs[1], docs[4]] and kept_ids == [[1], [4]] and dropped == 4
    assert PromptConfig().keep == "all"


def test_prompt_sources_refuse_the_eval_split():
    with pytest.raises(ValueError, match="source: generated"):
        rl_stage.prompt_docs(PromptConfig(source="task"), "reasoning", {})
    with pytest.raises(ValueError, match="evaluated on"):
        rl_stage.prompt_docs(PromptConfig(source="task", split="test"), "gsm8k", {"data_path": "unused"})


def test_config_derives_the_batch_and_checks_it():
    cfg = RLConfig(group_size=4, prompts_per_step=3, micro_batch_size=6)
    assert cfg.global_batch_size == 12 and cfg.clip_high == cfg.clip_eps == 0.2
    assert RLConfig(clip_eps_high=0.28).clip_high == 0.28
    with pytest.raises(ValidationError, match="prompts_per_step \\* group_size"):
        RLConfig(group_size=4, prompts_per_step=3, global_batch_size=16)
    with pytest.raises(ValidationError, match="multiple of micro_batch_size"):
        RLConfig(group_size=4, prompts_per_step=3, micro_batch_size=8)
    with pytest.raises(ValidationError, match="no room for the prompt"):
        RLConfig(max_new_tokens=512, seq_len=512)
    assert RLConfig.model_validate(RLConfig().model_dump()).global_batch_size == 64  # a dumped config reloads


def test_the_report_shows_the_reward_curve(tmp_path):
    from infir.report.render import write_report

    rows = [
        {
            "step": s,
            "loss": 0.01,
            "lr": 1e-4,
            "reward": 0.1 + 0.01 * s,
            "reward_std": 0.05,
            "accuracy": 0.01 * s,
            "tokens_per_s": 900.0,
        }
        for s in range(1, 21)
    ]
    (tmp_path / "rl").mkdir()
    (tmp_path / "rl" / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    write_json(tmp_path / "rl" / "summary.json", {"steps": 20, **rl_stage.reward_curve_summary(rows)})
    page = write_report(tmp_path).read_text()
    assert (tmp_path / "report" / "reward.png").is_file() and 'src="reward.png"' in page
    assert "<td>0.155</td><td>0.255</td>" in page  # reward over the first and last 10 steps
