"""After SFT the model ends its turn by itself: `<|im_end|>` on held-out prompts, not the length limit."""

import json

import yaml

from infir.cli import main
from infir.model.llm import ModelConfig, build_model


def test_generation_stops_at_end_of_turn_after_sft(tmp_path, chat_tokenizer):
    base = tmp_path / "base"
    model = build_model(
        ModelConfig(
            preset=None,
            hidden_size=64,
            num_layers=2,
            num_heads=2,
            intermediate_size=192,
            max_position_embeddings=256,
        ),
        tokenizer=chat_tokenizer,
    )
    model.save_pretrained(base)
    chat_tokenizer.save_pretrained(base)
    recipe = {
        "name": "stops",
        "seed": 0,
        "stages": ["sft", "eval"],
        "model": {"name_or_path": str(base)},
        "sft": {
            "init_from": None,
            "data": [{"type": "generated", "families": ["chain_sum"], "per_family": 600, "seed": 3}],
            "epochs": 3,
            "global_batch_size": 8,
            "micro_batch_size": 8,
            "seq_len": 256,
            "optimizer": {"lr": 3e-3},
            "save_every": 0,
            "log_every": 50,
        },
        "eval": {
            "tasks": [
                {
                    "name": "reasoning",
                    "max_new_tokens": 64,
                    "options": {"n": 40, "seed": 7, "families": ["chain_sum"]},
                }
            ],
            "batch_size": 40,
        },
    }
    path = tmp_path / "stops.yaml"
    path.write_text(yaml.safe_dump(recipe))
    assert main(["run", str(path), "--run-dir", str(tmp_path / "run")]) == 0
    summary = json.loads((tmp_path / "run" / "eval" / "summary.json").read_text())
    result = summary["results"]["sft"]["reasoning"]
    samples = [json.loads(x) for x in (tmp_path / "run" / "eval" / "sft" / "reasoning.samples.jsonl").open()]
    assert len(samples) == 40 and summary["chat"]["sft"] is True
    ended = sum(s["finish_reason"] == "eos" for s in samples) / len(samples)
    assert ended >= 0.95 and result["stopped"] >= 0.95, samples[:3]
