"""Batched generation on a transformers causal LM: greedy or sampled, KV cache, stop strings.

    gen = Generator.from_pretrained("runs/tiny/sft/final")
    outs = gen.generate(prompts, max_new_tokens=128, stop=["\\n\\n"], batch_size=16)
    outs[0].text, outs[0].finish_reason, outs[0].token_ids

Why our own loop instead of `model.generate`: on a small model the per-step bookkeeping of `generate`
costs as much as the forward pass, and a batch keeps computing rows that already stopped. Here prompts
are sorted by length (little padding), the prefill computes logits for the last position only, and rows
that hit EOS, a stop string or their token budget leave the batch (their KV cache rows are dropped), so
the remaining rows run faster and the loop ends as soon as the last row finishes.

Reused by synthesis (teacher sampling) and RL (rollouts): `return_token_ids=True` gives the generated ids.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from infir.eval.sampling import Sampler


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


def pick_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def pick_dtype(dtype: str, device: torch.device) -> torch.dtype:
    if dtype == "auto":
        # bf16 halves memory and time on GPUs; CPUs keep float32 (bf16 matmuls are slow on most of them).
        return torch.bfloat16 if device.type == "cuda" and torch.cuda.is_bf16_supported() else torch.float32
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]


def load_model(path: str | Path, device: str = "auto", dtype: str = "auto"):
    """Model and tokenizer from a local folder or a hub name, ready for inference."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dev = pick_device(device)
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=pick_dtype(dtype, dev))
    model.to(dev).eval()
    return model, tokenizer


def eos_token_ids(model, tokenizer) -> set[int]:
    """Every id that ends a turn: the tokenizer's EOS plus the model's generation-config EOS list."""
    ids: set[int] = set()
    for value in (tokenizer.eos_token_id, getattr(getattr(model, "generation_config", None), "eos_token_id", None)):
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
        tail = self.tokenizer.decode(ids[-self.window:], skip_special_tokens=False)
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
        return out

    def generate(self, prompts: Sequence[str | Sequence[int]], *, max_new_tokens: int = 256,
                 stop: Sequence[str] = (), temperature: float = 0.0, top_p: float = 1.0, top_k: int = 0,
                 num_samples: int = 1, seed: int = 0, batch_size: int = 16, return_token_ids: bool = False,
                 max_length: int | None = None,
                 progress: Callable[[int], Any] | None = None) -> list[Generation]:
        """Generations in prompt order; with `num_samples` > 1, the samples of a prompt are adjacent."""
        encoded = [ids for ids in self.encode(prompts) for _ in range(num_samples)]
        limit = max_length or getattr(self.model.config, "max_position_embeddings", None)
        if limit:  # keep the end of over-long prompts (the question) and room for the answer
            encoded = [ids[-max(1, limit - max_new_tokens):] for ids in encoded]
        # Longest first, like lm-evaluation-harness: an out-of-memory shows up on the first batch.
        order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i]))
        sampler = Sampler(temperature, top_p, top_k, seed, self.device)
        stopper = StopChecker(self.tokenizer, stop)
        results: list[Generation | None] = [None] * len(encoded)
        stats = GenerationStats(prompts=len(encoded))
        t0 = time.perf_counter()
        for start in range(0, len(order), batch_size):
            batch = order[start:start + batch_size]
            for i, gen in zip(batch, self._generate_batch([encoded[i] for i in batch], max_new_tokens, sampler,
                                                          stopper, return_token_ids)):
                results[i] = gen
                stats.new_tokens += gen.new_tokens
            if progress is not None:
                progress(len(batch))
        stats.seconds = time.perf_counter() - t0
        self.last_stats = stats
        return results  # type: ignore[return-value]

    @torch.inference_mode()
    def _generate_batch(self, prompts: list[list[int]], max_new_tokens: int, sampler: Sampler,
                        stopper: StopChecker, return_token_ids: bool) -> list[Generation]:
        from transformers import DynamicCache

        n = len(prompts)
        width = max(len(p) for p in prompts)
        input_ids = torch.full((n, width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((n, width), dtype=torch.long)
        for row, ids in enumerate(prompts):  # left padding keeps every row's last token in the last column
            input_ids[row, width - len(ids):] = torch.tensor(ids, dtype=torch.long)
            mask[row, width - len(ids):] = 1
        input_ids, mask = input_ids.to(self.device), mask.to(self.device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = DynamicCache(config=self.model.config)
        out = self.model(input_ids=input_ids, attention_mask=mask, position_ids=positions, cache=cache,
                         use_cache=True, logits_to_keep=1)
        logits = out.logits[:, -1, :]
        next_pos = positions[:, -1:] + 1
        active = list(range(n))  # original row of each row still in the batch
        generated: list[list[int]] = [[] for _ in range(n)]
        finish = ["length"] * n
        for _ in range(max_new_tokens):
            tokens = sampler(logits)
            keep = []
            for j, (row, tok) in enumerate(zip(active, tokens.tolist())):
                if tok in self.eos_ids:
                    finish[row] = "eos"
                    continue
                generated[row].append(tok)
                if stopper.hit(generated[row]):
                    finish[row] = "stop"
                elif len(generated[row]) < max_new_tokens:
                    keep.append(j)
            if not keep:
                break
            if len(keep) < len(active):  # finished rows leave the batch, KV cache included
                index = torch.tensor(keep, device=self.device)
                cache.batch_select_indices(index)
                mask, next_pos, tokens = mask[index], next_pos[index], tokens[index]
                active = [active[j] for j in keep]
            mask = torch.cat([mask, mask.new_ones((len(active), 1))], dim=1)
            out = self.model(input_ids=tokens[:, None], attention_mask=mask, position_ids=next_pos, cache=cache,
                             use_cache=True)
            logits = out.logits[:, -1, :]
            next_pos = next_pos + 1
        results = []
        for row in range(n):
            text = self.tokenizer.decode(generated[row], skip_special_tokens=True)
            results.append(Generation(text=stopper.cut(text), finish_reason=finish[row],
                                      token_ids=generated[row] if return_token_ids else None,
                                      prompt_tokens=len(prompts[row]), new_tokens=len(generated[row])))
        return results
