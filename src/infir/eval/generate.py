"""Batched generation on a transformers causal LM: greedy or sampled, KV cache, stop strings.

    gen = Generator.from_pretrained("runs/tiny/sft/final")
    outs = gen.generate(prompts, max_new_tokens=128, stop=["\\n\\n"], batch_size=16)
    outs[0].text, outs[0].finish_reason, outs[0].token_ids

Why our own loop instead of `model.generate`: a `generate` batch keeps computing rows that already
stopped until its longest row ends, and on a small model every decoding step costs about the same
whatever the number of rows (reading the weights dominates). Here prompts are sorted by length (little
padding), the prefill computes logits for the last position only, rows that hit EOS, a stop string or
their token budget leave the batch at once, and waiting prompts take the freed slots (continuous
batching, see `batching.py`), so the batch stays full and the number of steps approaches
total tokens / batch size.

Reused by synthesis (teacher sampling) and RL (rollouts): `return_token_ids=True` gives the generated ids.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from infir.eval.batching import RunningBatch, mergeable
from infir.eval.sampling import Sampler
from infir.train.parallel import pick_device


@dataclass
class Generation:
    text: str
    finish_reason: str  # "stop" (a stop string), "eos", or "length"
    token_ids: list[int] | None = None  # every generated id (stop-string tokens included), when asked
    prompt_tokens: int = 0
    new_tokens: int = 0


@dataclass
class GenerationStats:
    prompts: int = 0
    new_tokens: int = 0
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def tokens_per_second(self) -> float:
        return self.new_tokens / self.seconds if self.seconds else 0.0


def pick_dtype(dtype: str, device: torch.device) -> torch.dtype:
    if dtype == "auto":
        # bf16 halves memory and time on GPUs; CPUs keep float32 (bf16 matmuls are slow on most of them).
        return torch.bfloat16 if device.type == "cuda" and torch.cuda.is_bf16_supported() else torch.float32
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]


def load_model(path: str | Path, device: str = "auto", dtype: str = "auto"):
    """Model and tokenizer from a local folder or a hub name, ready for inference."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    local = Path(path).expanduser()
    if not local.exists() and (str(path).startswith((".", "/", "~")) or str(path).count("/") > 1):
        raise FileNotFoundError(f"model {path}: no such folder (and not a hub name)")
    if local.is_dir() and not (local / "config.json").exists():
        raise FileNotFoundError(f"model {path}: folder has no config.json (not a saved Hugging Face model)")
    dev = pick_device(device)
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=pick_dtype(dtype, dev))
    model.to(dev).eval()
    return model, tokenizer


def eos_token_ids(model, tokenizer) -> set[int]:
    """Every id that ends a turn: the tokenizer's EOS plus the model's generation-config EOS list."""
    ids: set[int] = set()
    for value in (
        tokenizer.eos_token_id,
        getattr(getattr(model, "generation_config", None), "eos_token_id", None),
    ):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, (list, tuple)):
            ids.update(int(v) for v in value)
    for token in ("<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>"):  # common end-of-turn tokens
        tid = tokenizer.convert_tokens_to_ids(token) if token in tokenizer.get_vocab() else None
        if isinstance(tid, int):
            ids.add(tid)
    return ids


class StopChecker:
    """Finds stop strings in the text of freshly generated tokens without re-decoding whole rows."""

    def __init__(self, tokenizer, stops: Sequence[str]):
        self.tokenizer = tokenizer
        self.stops = [s for s in stops if s]
        # A stop string of c characters is spread over at most c tokens (plus partial-byte tokens).
        self.window = max((len(s) for s in self.stops), default=0) + 4

    def hit(self, ids: list[int]) -> bool:
        if not self.stops:
            return False
        tail = self.tokenizer.decode(ids[-self.window :], skip_special_tokens=False)
        return any(s in tail for s in self.stops)

    def cut(self, text: str) -> str:
        positions = [i for i in (text.find(s) for s in self.stops) if i >= 0]
        return text[: min(positions)] if positions else text


class Generator:
    def __init__(self, model, tokenizer, add_special_tokens: bool = True):
        self.model = model
        self.tokenizer = tokenizer
        self.device = next(model.parameters()).device
        self.add_special_tokens = add_special_tokens
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.pad_id = int(pad if pad is not None else 0)
        self.eos_ids = eos_token_ids(model, tokenizer)
        self.last_stats = GenerationStats()

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str = "auto", dtype: str = "auto") -> "Generator":
        model, tokenizer = load_model(path, device, dtype)
        return cls(model, tokenizer)

    def encode(self, prompts: Sequence[str | Sequence[int]]) -> list[list[int]]:
        out = []
        for p in prompts:
            if isinstance(p, str):
                ids = self.tokenizer(p, add_special_tokens=self.add_special_tokens)["input_ids"]
                # A chat template already wrote the BOS; do not add a second one.
                bos = self.tokenizer.bos_token_id
                if len(ids) > 1 and bos is not None and ids[0] == bos and ids[1] == bos:
                    ids = ids[1:]
                out.append(list(ids))
            else:
                out.append(list(p))
        # A row needs at least one token to condition on; an empty prompt is conditioned on BOS/EOS.
        start = self.tokenizer.bos_token_id if self.tokenizer.bos_token_id is not None else self.pad_id
        return [ids or [start] for ids in out]

    def generate(
        self,
        prompts: Sequence[str | Sequence[int]],
        *,
        max_new_tokens: int = 256,
        stop: Sequence[str] = (),
        temperature: float = 0.0,
        top_p: float = 1.0,
        top_k: int = 0,
        num_samples: int = 1,
        seed: int = 0,
        batch_size: int = 16,
        return_token_ids: bool = False,
        max_length: int | None = None,
        progress: Callable[[int], Any] | None = None,
    ) -> list[Generation]:
        """Generations in prompt order; with `num_samples` > 1, the samples of a prompt are adjacent."""
        encoded = [ids for ids in self.encode(prompts) for _ in range(num_samples)]
        limit = max_length or getattr(self.model.config, "max_position_embeddings", None)
        if limit:  # keep the end of over-long prompts (the question) and room for the answer
            encoded = [ids[-max(1, limit - max_new_tokens) :] for ids in encoded]
        # Longest first, like lm-evaluation-harness: an out-of-memory shows up on the first batch.
        order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i]))
        run = _Decoding(
            self,
            encoded,
            max_new_tokens,
            Sampler(temperature, top_p, top_k, seed, self.device),
            StopChecker(self.tokenizer, stop),
            progress,
        )
        t0 = time.perf_counter()
        run.decode(order, batch_size)
        stats = GenerationStats(
            prompts=len(encoded),
            new_tokens=sum(len(g) for g in run.generated),
            seconds=time.perf_counter() - t0,
        )
        self.last_stats = stats
        return [
            Generation(
                text=run.stopper.cut(self.tokenizer.decode(ids, skip_special_tokens=True)),
                finish_reason=run.finish[i],
                token_ids=ids if return_token_ids else None,
                prompt_tokens=len(encoded[i]),
                new_tokens=len(ids),
            )
            for i, ids in enumerate(run.generated)
        ]


class _Decoding:
    """One `generate` call: a queue of prompts feeding a running batch of at most `batch_size` rows."""

    def __init__(
        self,
        gen: Generator,
        prompts: list[list[int]],
        max_new_tokens: int,
        sampler: Sampler,
        stopper: StopChecker,
        progress: Callable[[int], Any] | None,
    ):
        self.gen, self.prompts, self.max_new_tokens = gen, prompts, max_new_tokens
        self.sampler, self.stopper, self.progress = sampler, stopper, progress
        self.generated: list[list[int]] = [[] for _ in prompts]
        self.finish = ["length"] * len(prompts)

    def _advance(self, rows: list[int], tokens: torch.Tensor) -> list[int]:
        """Record one sampled token per row; the positions of the rows that go on."""
        keep = []
        for j, (row, tok) in enumerate(zip(rows, tokens.tolist())):
            if tok in self.gen.eos_ids:
                self.finish[row] = "eos"
            else:
                self.generated[row].append(tok)
                if self.stopper.hit(self.generated[row]):
                    self.finish[row] = "stop"
                elif len(self.generated[row]) < self.max_new_tokens:
                    keep.append(j)
                    continue
            if self.progress is not None:
                self.progress(1)
        return keep

    def _admit(self, rows: list[int]) -> RunningBatch:
        batch, logits = RunningBatch.prefill(
            self.gen.model, [self.prompts[r] for r in rows], rows, self.gen.pad_id, self.gen.device
        )
        tokens = self.sampler(logits)
        batch.keep(self._advance(batch.rows, tokens), tokens)
        return batch

    @torch.inference_mode()
    def decode(self, order: list[int], batch_size: int) -> None:
        queue = deque(order)
        batch: RunningBatch | None = None
        # Prompts join a running batch once a quarter of its slots is free (fewer, larger prefills),
        # where the cache layout allows it; otherwise batches run to completion one after another.
        refill_at = max(1, batch_size // 4)
        continuous = True
        while queue or batch is not None:
            free = batch_size - (len(batch) if batch is not None else 0)
            if queue and (batch is None or (continuous and free >= refill_at)):
                new = self._admit([queue.popleft() for _ in range(min(free, len(queue)))])
                if batch is None:
                    batch = new
                    continuous = mergeable(batch.cache)
                elif len(new):
                    batch.extend(new)
                if not len(batch):
                    batch = None
                continue
            logits = batch.step(self.gen.model)
            tokens = self.sampler(logits)
            batch.keep(self._advance(batch.rows, tokens), tokens)
            if not len(batch):
                batch = None
