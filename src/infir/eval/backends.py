"""Inference backends the evaluator drives: transformers (CPU or GPU), vLLM (GPU, where it runs), and
transformers LLaVA models for the tasks that show images.

All answer `generate(prompts, ...) -> list[Generation]` and expose the tokenizer for chat templates; the
text backends also answer `loglikelihood(requests) -> list[Scored]`, and the VL backend (`sees_images`)
takes each prompt's images beside it.
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

    def loglikelihood(
        self,
        requests: Sequence[tuple[str, str]],
        batch_size: int = 16,
        progress: Callable[[int], object] | None = None,
    ) -> list[Scored]:
        return loglikelihood(self.model, self.tokenizer, requests, batch_size=batch_size, progress=progress)


class VLLMBackend:
    """vLLM engine: continuous batching and paged attention on GPUs. Needs `pip install vllm`."""

    name = "vllm"

    def __init__(
        self,
        path: str | Path,
        dtype: str = "auto",
        gpu_memory_utilization: float = 0.85,
        max_model_len: int | None = None,
    ):
        try:
            from vllm import LLM
        except ImportError as e:
            raise RuntimeError(
                "the vllm backend needs the `vllm` package on a machine with a supported GPU "
                "(pip install vllm); use backend: hf elsewhere"
            ) from e
        self.llm = LLM(
            model=str(path),
            dtype=dtype,
            gpu_memory_utilization=gpu_memory_utilization,
            max_model_len=max_model_len,
            enable_prefix_caching=True,
        )
        self.tokenizer = self.llm.get_tokenizer()
        self.last_stats = None

    def generate(
        self,
        prompts: Sequence[str],
        *,
        max_new_tokens: int = 256,
        stop: Sequence[str] = (),
        temperature: float = 0.0,
        top_p: float = 1.0,
        top_k: int = 0,
        num_samples: int = 1,
        seed: int = 0,
        batch_size: int | None = None,
        return_token_ids: bool = False,
        max_length: int | None = None,
        progress: Callable[[int], object] | None = None,
    ) -> list[Generation]:
        from vllm import SamplingParams

        params = SamplingParams(
            n=num_samples,
            temperature=temperature,
            top_p=top_p,
            top_k=top_k or -1,
            max_tokens=max_new_tokens,
            stop=list(stop) or None,
            seed=seed,
        )
        # vLLM schedules its own batches; `batch_size` is an HF-backend setting.
        outputs = self.llm.generate(list(prompts), params, use_tqdm=False)
        results = []
        for out in outputs:
            for choice in out.outputs:
                # vLLM reports "stop" for EOS and stop strings alike; the matched string tells them apart.
                if choice.finish_reason == "length":
                    finish = "length"
                else:
                    finish = "stop" if isinstance(choice.stop_reason, str) else "eos"
                ids = list(choice.token_ids)
                results.append(
                    Generation(
                        text=choice.text,
                        finish_reason=finish,
                        token_ids=ids if return_token_ids else None,
                        prompt_tokens=len(out.prompt_token_ids),
                        new_tokens=len(ids),
                    )
                )
            if progress is not None:
                progress(1)
        return results

    def loglikelihood(
        self,
        requests: Sequence[tuple[str, str]],
        batch_size: int = 16,
        progress: Callable[[int], object] | None = None,
    ) -> list[Scored]:
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


class VLBackend:
    """A LLaVA-format model (`LlavaForConditionalGeneration` + its processor), greedy decoding.

    Prompts carry one `<image>` marker per image, expanded to the tower's patch tokens exactly as in
    training (`infir.model.vlm_inputs`); rows are left-padded so generation continues from every row's
    last token. Decoding is transformers' `generate` (it feeds `pixel_values` to the first forward only and
    keeps the KV cache); it stops at the chat template's end-of-turn."""

    name = "vl"
    sees_images = True

    def __init__(self, model, processor, aspect: str = "resize"):
        self.model, self.processor, self.aspect = model, processor, aspect
        self.tokenizer = processor.tokenizer
        self.last_stats = None

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu", aspect: str = "resize") -> "VLBackend":
        from infir.model.vlm import load_vlm

        return cls(*load_vlm(path, device), aspect=aspect)

    def generate(
        self,
        prompts: Sequence[str],
        *,
        images: Sequence[Sequence],
        max_new_tokens: int = 32,
        temperature: float = 0.0,
        num_samples: int = 1,
        batch_size: int = 32,
        progress: Callable[[int], object] | None = None,
        **_ignored,
    ) -> list[Generation]:
        import torch

        from infir.model.vlm_inputs import ImagePreparer, expand_image_tokens
        from infir.tokenize.chat import chat_stop_token_ids

        if temperature != 0 or num_samples != 1:
            raise ValueError("the VL backend decodes greedily, one sample per prompt")
        model, tokenizer = self.model, self.tokenizer
        image_token_id, n_image_tokens = model.config.image_token_id, model.config.image_seq_length
        prepare = ImagePreparer(self.processor.image_processor, self.aspect)
        stops = chat_stop_token_ids(tokenizer)
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stops[0]
        device, dtype = next(model.parameters()).device, next(model.parameters()).dtype
        model.eval()
        results: list[Generation] = []
        for start in range(0, len(prompts), batch_size):
            encoded = []
            for text in prompts[start : start + batch_size]:
                ids = tokenizer(text, add_special_tokens=False)["input_ids"]
                encoded.append(expand_image_tokens(ids, [0] * len(ids), image_token_id, n_image_tokens)[0])
            width = max(len(p) for p in encoded)
            ids = torch.full((len(encoded), width), pad, dtype=torch.long)
            mask = torch.zeros_like(ids)
            for row, p in enumerate(encoded):  # left padding
                ids[row, width - len(p) :] = torch.tensor(p)
                mask[row, width - len(p) :] = 1
            inputs = {"input_ids": ids.to(device), "attention_mask": mask.to(device)}
            chunk_images = [im for row in images[start : start + batch_size] for im in row]
            if chunk_images:
                inputs["pixel_values"] = prepare(chunk_images).to(device, dtype=dtype)
            with torch.inference_mode():
                out = model.generate(
                    **inputs,
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    eos_token_id=stops,
                    pad_token_id=pad,
                )
            texts = tokenizer.batch_decode(out[:, width:], skip_special_tokens=True)
            for text, row in zip(texts, out[:, width:].tolist()):
                ended = next((i for i, t in enumerate(row) if t in stops), None)
                results.append(
                    Generation(
                        text=text,
                        finish_reason="length" if ended is None else "eos",
                        prompt_tokens=width,
                        new_tokens=len(row) if ended is None else ended + 1,
                    )
                )
            if progress is not None:
                progress(len(encoded))
        return results


def load_backend(kind: str, path: str | Path, device: str = "auto", dtype: str = "auto"):
    if kind == "vllm":
        return VLLMBackend(path, dtype=dtype)
    if kind == "hf":
        return HFBackend.load(path, device, dtype)
    if kind == "vl":
        from infir.train.parallel import pick_device

        return VLBackend.load(path, str(pick_device(device)))
    raise ValueError(f"unknown backend {kind!r} (hf, vllm or vl)")
