"""The recipe stage: reads the curate stage's output, writes tokenizer, shards, mixtures and summary."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from transformers import AutoTokenizer

from infir.run import MARKER, Stage, run_stage
from infir.tokenize import stage as tokenize_stage
from infir.tokenize.config import TokenizeConfig, TokenizerConfig
from infir.tokenize.loader import build_loader


def _recipe(**tokenize):
    # The stage reads only these sections; the real Recipe composes them the same way.
    recipe = SimpleNamespace(
        seed=0,
        tokenizer=TokenizerConfig(vocab_size=700),
        tokenize=TokenizeConfig(shard_size_mb=0.2, workers=0, **tokenize),
    )
    return recipe


STAGE = Stage(
    "tokenize", sections=("tokenizer", "tokenize"), needs=("curate",), fn=tokenize_stage.run, resumable=True
)


def test_stage_reads_curate_output(tmp_path, corpus_docs, make_curated):
    run_dir = tmp_path / "run"
    make_curated(
        run_dir / "curate",
        corpus_docs,
        mixtures={
            "pretrain": {"weights": {"web": 2, "code": 1, "math": 1, "wiki": 1}},
            "anneal": {"weights": {"math": 3, "code": 1}},
        },
    )
    (run_dir / "curate" / MARKER).write_text(json.dumps({"fingerprint": "x"}))
    summary = run_stage(
        _recipe(mixtures={"anneal": {"math": 1.0}}, seq_len=48), STAGE, run_dir, log=lambda *_: None
    )
    out = run_dir / "tokenize"
    assert (out / MARKER).exists() and json.loads((out / "summary.json").read_text())["domains"]
    tok = AutoTokenizer.from_pretrained(out / "tokenizer")
    assert len(tok) == summary["tokenizer"]["vocab_size"] == 700
    assert summary["mixtures"]["pretrain"] == pytest.approx({"web": 0.5, "code": 0.25, "math": 0.25})
    assert summary["dropped_from_mixtures"] == {"pretrain": ["wiki"]}  # no such domain was curated
    assert summary["mixtures"]["anneal"] == {"math": 1.0}  # the recipe's override wins
    assert set(summary["mixtures"]["natural"]) == {"web", "code", "math"}
    for s in summary["domains"].values():
        assert s["train_docs"] + s["val_docs"] == s["docs"] and s["val_docs"] >= 1
    batch = next(iter(build_loader(out, "pretrain", 32, 4, seed=0)))
    assert batch["input_ids"].shape == (4, 32) and int(batch["input_ids"].max()) < len(tok)
    default_len = build_loader(out, "anneal", None, 2, seed=0).batch(0)["input_ids"].shape
    assert default_len == (2, 48)  # the recipe's tokenize.seq_len


def test_stage_needs_curate(tmp_path):
    with pytest.raises(FileNotFoundError, match="curate"):
        run_stage(_recipe(), STAGE, tmp_path / "run", log=lambda *_: None)
