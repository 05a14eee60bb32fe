"""Small deterministic data sources and models for trainer tests."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from infir.model.llm import ModelConfig, build_model


class RandomTokens:
    """Batches that are a pure function of (seed, step): random documents packed with position resets."""

    def __init__(
        self,
        vocab: int,
        seq_len: int,
        batch: int,
        seed: int = 0,
        rank: int = 0,
        world: int = 1,
        stop_at: int = 0,
    ):
        self.vocab, self.seq_len, self.batch, self.seed = vocab, seq_len, batch, seed
        self.rank, self.world, self.step, self.stop_at = rank, world, 0, stop_at

    def batch_at(self, step: int) -> dict:
        with torch.device("cpu"):  # the data pipeline's tensors are CPU tensors whatever the default device
            return self._batch_at(step)

    def _batch_at(self, step: int) -> dict:
        g = torch.Generator().manual_seed(self.seed * 100_003 + step)
        # a learnable pattern: token t+1 = (token t * 3 + 1) mod vocab, restarted per document
        starts = torch.randint(0, self.vocab, (self.batch, 2), generator=g)
        ids = torch.empty(self.batch, self.seq_len, dtype=torch.long)
        pos = torch.empty_like(ids)
        half = self.seq_len // 2
        for b in range(self.batch):
            for d, (lo, hi) in enumerate(((0, half), (half, self.seq_len))):
                x = int(starts[b, d])
                for t in range(lo, hi):
                    ids[b, t] = x
                    pos[b, t] = t - lo
                    x = (x * 3 + 1) % self.vocab
        labels = ids.clone()
        labels[:, half] = -100
        per = self.batch // self.world
        sl = slice(self.rank * per, (self.rank + 1) * per)
        return {"input_ids": ids[sl], "labels": labels[sl], "position_ids": pos[sl]}

    def __iter__(self):
        while True:
            if self.stop_at and self.step + 1 == self.stop_at:
                os._exit(3)
            b = self.batch_at(self.step)
            self.step += 1
            yield b

    def state_dict(self):
        return {"step": self.step}

    def load_state_dict(self, s):
        self.step = s["step"]


def tiny_model(vocab: int = 64, seed: int = 0):
    torch.manual_seed(seed)
    return build_model(
        ModelConfig(
            preset=None,
            hidden_size=32,
            num_layers=2,
            num_heads=2,
            intermediate_size=64,
            max_position_embeddings=128,
        ),
        vocab_size=vocab,
    )


def losses(run_dir: Path) -> dict[int, float]:
    """step -> logged training loss, from a trainer's metrics.jsonl."""
    records = [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in records if "loss" in r}
