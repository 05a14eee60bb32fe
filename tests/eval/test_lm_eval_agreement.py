"""Per-question MMLU-STEM choices agree with lm-evaluation-harness on the same local model and data.

lm-eval comes with the `bench` extra, which the `dev` extra (CI's) includes.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path


REPO = Path(__file__).resolve().parents[2]


def _bench_module(name):
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(REPO / "benchmarks"))
    spec.loader.exec_module(module)
    return module


def test_mmlu_stem_choices_agree_with_lm_eval(shared, tmp_path):
    import lm_eval  # noqa: F401  (installed by the dev extra: the comparison must run, not skip)
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tiny = _bench_module("eval_tiny_model")
    compare = _bench_module("eval_mmlu_vs_lm_eval").compare
    tok = tiny.build_tokenizer(shared)
    torch.manual_seed(0)
    model = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=len(tok),
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
        )
    )
    model.save_pretrained(tmp_path / "model")
    tok.save_pretrained(tmp_path / "model")
    result = compare(
        tmp_path / "model", shared / "benchmarks" / "mmlu_stem" / "test.jsonl", limit=300, batch_size=16
    )
    print(result)
    assert result["questions"] == 300
    assert result["agreement"] >= 0.99
