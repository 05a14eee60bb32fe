"""Inference backends the evaluator drives: transformers (CPU or GPU) and vLLM (GPU, where it runs).

Both answer the same two calls: `generate(prompts, ...) -> list[Generation]` and
`loglikelihood(requests) -> list[Scored]`, and expose the tokenizer for chat templates.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

from infir.eval.generate import Generation, Generator, load_model
from infir.eval.loglik import Scored, encode_pair, loglikelihood


class HFBackend:
    name = "hf"

    def __init__(self, model, tokenizer):
        self.model, self.tokenizer = model, tokenizer
        self.generator = Generator(model, tokenizer)

    @classmethod
    def load(cls, path: str | Path, device: str = "auto", dtype: str = "auto") -> "HFBackend":
        return cls(*load_model(path, device, dtype))

    @property
    def last_stats(self):
        return self.generator.last_stats

    def generate(self, prompts: Sequence[str], **kw) -> list[Generation]:
        return self.generator.generate(prompts, **kw)

    def loglikelihood(self, requests: Sequence[tuple[str, str]], batch_size: int = 16,
                      progress: Callable[[int], object] | None = None) -> list[Scored]:
        return loglikelihood(self.model, self.tokenizer, requests, batch_size=batch_size, progress=progress)


class VLLMBackend:
    """vLLM engine: continuous batching and paged attention on GPUs. Needs `pip install vllm`."""

    name = "vllm"

    def __init__(self, path: str | Path, dtype: str = "auto", gpu_memory_utilization: float = 0.85,
                 max_model_len: int | None = None):
        try:
            from vllm import LLM
        except ImportError as e:
            raise RuntimeError("the vllm backend needs the `vllm` package on a machine with a supported GPU "
                               "(pip install vllm); use backend: hf elsewhere") from e
        self.llm = LLM(model=str(path), dtype=dtype, gpu_memory_utilization=gpu_memory_utilization,
                       max_model_len=max_model_len, enable_prefix_caching=True)
        self.tokenizer = self.llm.get_tokenizer()
        self.last_stats = None

    def generate(self, prompts: Sequence[str], *, max_new_tokens: int = 256, stop: Sequence[str] = (),
                 temperature: float = 0.0, top_p: float = 1.0, top_k: int = 0, num_samples: int = 1, seed: int = 0,
                 batch_size: int | None = None, return_token_ids: bool = False, max_length: int | None = None,
                 progress: Callable[[int], object] | None = None) -> list[Generation]:
        from vllm import SamplingParams

        params = SamplingParams(n=num_samples, temperature=temperature, top_p=top_p, top_k=top_k or -1,
                                max_tokens=max_new_tokens, stop=list(stop) or None, seed=seed)
        # vLLM schedules its own batches; `batch_size` is an HF-backend setting.
        outputs = self.llm.generate(list(prompts), params, use_tqdm=False)
        results = []
        for out in outputs:
            for choice in out.outputs:
                finish = {"stop": "stop" if choice.stop_reason is not None and stop else "eos",
                          "length": "length"}.get(choice.finish_reason, choice.finish_reason)
                ids = list(choice.token_ids)
                results.append(Generation(text=choice.text, finish_reason=finish,
                                          token_ids=ids if return_token_ids else None,
                                          prompt_tokens=len(out.prompt_token_ids), new_tokens=len(ids)))
            if progress is not None:
                progress(1)
        return results

    def loglikelihood(self, requests: Sequence[tuple[str, str]], batch_size: int = 16,
                      progress: Callable[[int], object] | None = None) -> list[Scored]:
        """Prompt log-probabilities of context + continuation, read off the continuation positions."""
        from vllm import SamplingParams

        encoded = [encode_pair(self.tokenizer, c, x) for c, x in requests]
        prompts = [{"prompt_token_ids": ctx + cont} for ctx, cont in encoded]
        params = SamplingParams(max_tokens=1, prompt_logprobs=1, temperature=0.0)
        outputs = self.llm.generate(prompts, params, use_tqdm=False)
        results = []
        for (ctx, cont), out in zip(encoded, outputs):
            total, greedy = 0.0, True
            for offset, token in enumerate(cont):
                entry = out.prompt_logprobs[len(ctx) + offset]  # {token_id: Logprob(logprob, rank)}
                total += entry[token].logprob
                greedy = greedy and entry[token].rank == 1
            results.append(Scored(total, greedy))
        if progress is not None:
            progress(len(requests))
        return results


def load_backend(kind: str, path: str | Path, device: str = "auto", dtype: str = "auto"):
    if kind == "vllm":
        return VLLMBackend(path, dtype=dtype)
    if kind == "hf":
        return HFBackend.load(path, device, dtype)
    raise ValueError(f"unknown backend {kind!r} (hf or vllm)")
