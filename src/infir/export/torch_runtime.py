"""The PyTorch side of the edge benchmark: a transformers model on the CPU, fp32 or int8-dynamic, decoding
greedily with a KV cache in the same timed loop shape as `LlamaCppModel.greedy` (prefill, then one
token per step), so the two runtimes are timed doing the same work.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from infir.export.llamacpp import Timed


class TorchModel:
    def __init__(self, model_dir: str | Path, precision: str = "fp32", threads: int | None = None):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from infir.eval.generate import eos_token_ids

        if threads:
            torch.set_num_threads(threads)
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32).eval()
        if precision == "int8":
            from infir.export.quantize import quantize_dynamic_int8

            model = quantize_dynamic_int8(model)
        elif precision != "fp32":
            raise ValueError(f"precision {precision!r}: fp32 or int8")
        self.model = model
        self.precision = precision
        self.eos_ids = eos_token_ids(model, self.tokenizer)

    def tokenize(self, text: str) -> list[int]:
        return list(self.tokenizer(text)["input_ids"])

    def detokenize(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids))

    @torch.inference_mode()
    def mean_nll(self, ids: Sequence[int]) -> float:
        """Mean negative log-likelihood of ids[1:] given their prefixes."""
        logits = self.model(input_ids=torch.tensor([list(ids)])).logits[0, :-1].float()
        return float(torch.nn.functional.cross_entropy(logits, torch.tensor(list(ids[1:]))))

    @torch.inference_mode()
    def greedy(
        self,
        prompt_ids: Sequence[int],
        max_new_tokens: int,
        *,
        stop_at_eog: bool = True,
        should_stop: Callable[[list[int]], bool] | None = None,
    ) -> Timed:
        from transformers import DynamicCache

        cache = DynamicCache(config=self.model.config)
        ids = torch.tensor([list(prompt_ids)], dtype=torch.long)
        t0 = time.perf_counter()
        out = self.model(input_ids=ids, cache=cache, use_cache=True, logits_to_keep=1)
        token = int(out.logits[0, -1].argmax())
        t1 = time.perf_counter()
        generated: list[int] = []
        finish = "length"
        position = len(prompt_ids)
        while True:
            if stop_at_eog and token in self.eos_ids:
                finish = "eos"
                break
            generated.append(token)
            if should_stop is not None and should_stop(generated):
                finish = "stop"
                break
            if len(generated) >= max_new_tokens:
                break
            step = torch.tensor([[token]], dtype=torch.long)
            out = self.model(
                input_ids=step, cache=cache, use_cache=True, position_ids=torch.tensor([[position]])
            )
            position += 1
            token = int(out.logits[0, -1].argmax())
        return Timed(generated, len(prompt_ids), t1 - t0, time.perf_counter() - t1, finish)
