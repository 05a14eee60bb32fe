"""Run a GGUF through llama.cpp (llama-cpp-python): greedy decoding, timing, and an eval backend.

`llama-cpp-python` is the optional `edge` extra (`pip install 'infir[edge]'`; it compiles llama.cpp).
Decoding here is our own greedy loop over `Llama.eval` and the last logits row, not llama.cpp's
sampler chain: argmax over the same logits PyTorch produces is what lets us compare the two token
for token, and it is what a greedy sampler does anyway.

`LlamaCppBackend` answers the eval runner's `generate` / `loglikelihood` calls, so any eval Task
measures a GGUF exactly as it measures a PyTorch model. Prompts are built with the HF tokenizer's
chat template (the same text both runtimes see); llama.cpp tokenizes them with its own tokenizer.
"""

from __future__ import annotations

import contextlib

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

INSTALL_HINT = (
    "llama-cpp-python is not installed; `pip install 'infir[edge]'` builds it with llama.cpp "
    "(CPU: a C++ compiler and cmake, about 10 minutes on 2 cores)"
)


def llama_cpp_available() -> bool:
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        return False
    return True


def _llama_cpp():
    try:
        import llama_cpp
    except ImportError as e:
        raise RuntimeError(INSTALL_HINT) from e
    return llama_cpp


@dataclass
class Timed:
    """One greedy decode: generated ids and where the time went."""

    token_ids: list[int]
    prompt_tokens: int
    prefill_seconds: float  # prompt processing, up to the first generated token's logits
    decode_seconds: float  # every later step (one forward of one token each)
    finish_reason: str = "length"

    @property
    def decode_steps(self) -> int:
        return max(0, len(self.token_ids) - 1)


def decode_greedily(
    token: int,
    next_token: Callable[[int], int],
    max_new_tokens: int,
    *,
    is_end: Callable[[int], bool] | None = None,
    should_stop: Callable[[list[int]], bool] | None = None,
) -> tuple[list[int], str]:
    """The decode loop both runtimes time, from the first generated `token` on: keep it, then ask
    `next_token` for the one after, until an end-of-generation token (when `is_end` is given),
    `should_stop`, or `max_new_tokens`. Returns the kept ids and the finish reason."""
    out: list[int] = []
    while True:
        if is_end is not None and is_end(token):
            return out, "eos"
        out.append(token)
        if should_stop is not None and should_stop(out):
            return out, "stop"
        if len(out) >= max_new_tokens:
            return out, "length"
        token = next_token(token)


@contextlib.contextmanager
def _model_params(**fields):
    """llama-cpp-python's `Llama` takes only some of llama.cpp's model parameters; set the others on
    the defaults it starts from while one model loads."""
    import llama_cpp.llama_cpp as low

    defaults = low.llama_model_default_params

    def adjusted():
        params = defaults()
        for name, value in fields.items():
            setattr(params, name, value)
        return params

    low.llama_model_default_params = adjusted
    try:
        yield
    finally:
        low.llama_model_default_params = defaults


class LlamaCppModel:
    """A GGUF loaded in llama.cpp on the CPU.

    `repack`: let llama.cpp repack quantized weights for the CPU's matrix instructions (its "extra buffer
    types"). Off by default: on CPUs with AMX int8, the repacked q8_0 path crashed llama.cpp (segmentation
    fault) on small test models; turn it on to measure a large model's best speed.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        n_ctx: int = 2048,
        threads: int | None = None,
        logits_all: bool = False,
        repack: bool = False,
    ):
        llama_cpp = _llama_cpp()
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such GGUF file")
        self.path = path
        with _model_params(use_extra_bufts=repack):
            self.llm = self._load(llama_cpp, path, n_ctx, threads, logits_all)
        self._lib = llama_cpp
        self._vocab = llama_cpp.llama_model_get_vocab(self.llm.model)
        self.n_vocab = self.llm.n_vocab()
        self.n_ctx = n_ctx
        self.threads = threads

    @staticmethod
    def _load(llama_cpp, path: Path, n_ctx: int, threads: int | None, logits_all: bool):
        return llama_cpp.Llama(
            model_path=str(path),
            n_ctx=n_ctx,
            n_batch=n_ctx,
            n_ubatch=min(n_ctx, 512),
            n_threads=threads,
            n_threads_batch=threads,
            logits_all=logits_all,
            n_gpu_layers=0,
            verbose=False,
        )

    # ---- text <-> ids
    def tokenize(self, text: str, special: bool = True) -> list[int]:
        """llama.cpp's tokenization; BOS only where the GGUF asks for it (ours: never)."""
        return self.llm.tokenize(text.encode("utf-8"), add_bos=True, special=special)

    def detokenize(self, ids: Sequence[int]) -> str:
        return self.llm.detokenize(list(ids)).decode("utf-8", errors="replace")

    def is_end_of_generation(self, token: int) -> bool:
        return bool(self._lib.llama_vocab_is_eog(self._vocab, token))

    # ---- forward passes
    def _last_logits(self) -> np.ndarray:
        ptr = self._lib.llama_get_logits_ith(self.llm.ctx, -1)
        return np.ctypeslib.as_array(ptr, shape=(self.n_vocab,))

    def greedy(
        self,
        prompt_ids: Sequence[int],
        max_new_tokens: int,
        *,
        stop_at_eog: bool = True,
        should_stop: Callable[[list[int]], bool] | None = None,
    ) -> Timed:
        """Argmax decoding of up to `max_new_tokens` after `prompt_ids`, timed by phase."""
        if len(prompt_ids) + max_new_tokens > self.n_ctx:
            prompt_ids = list(prompt_ids)[-(self.n_ctx - max_new_tokens) :]
        self.llm.reset()
        t0 = time.perf_counter()
        self.llm.eval(list(prompt_ids))
        token = int(np.argmax(self._last_logits()))
        t1 = time.perf_counter()
        out, finish = decode_greedily(
            token,
            self._next_token,
            max_new_tokens,
            is_end=self.is_end_of_generation if stop_at_eog else None,
            should_stop=should_stop,
        )
        return Timed(out, len(prompt_ids), t1 - t0, time.perf_counter() - t1, finish)

    def _next_token(self, token: int) -> int:
        self.llm.eval([token])
        return int(np.argmax(self._last_logits()))

    def mean_nll(self, ids: Sequence[int]) -> float:
        """Mean negative log-likelihood of ids[1:] given their prefixes (needs `logits_all=True`)."""
        rows = self.prompt_logprobs(ids)
        return float(-np.mean([rows[i, t] for i, t in enumerate(ids[1:])]))

    def prompt_logprobs(self, ids: Sequence[int]) -> np.ndarray:
        """Log-softmax rows for every position of `ids` (needs `logits_all=True`)."""
        self.llm.reset()
        self.llm.eval(list(ids))
        scores = np.asarray(self.llm.scores[: len(ids)], dtype=np.float64)
        scores -= scores.max(axis=-1, keepdims=True)
        return scores - np.log(np.exp(scores).sum(axis=-1, keepdims=True))


@dataclass
class _Stats:
    prompts: int = 0
    new_tokens: int = 0
    seconds: float = 0.0

    @property
    def tokens_per_second(self) -> float:
        return self.new_tokens / self.seconds if self.seconds else 0.0


class LlamaCppBackend:
    """The eval runner's backend interface over a GGUF (greedy generation, log-likelihoods)."""

    name = "llama.cpp"

    def __init__(self, model: LlamaCppModel, tokenizer):
        self.model = model
        self.tokenizer = tokenizer  # HF tokenizer: builds (chat) prompts; llama.cpp tokenizes them
        self._scorer: LlamaCppModel | None = None
        self.last_stats = _Stats()

    @classmethod
    def load(
        cls, gguf_path: str | Path, tokenizer, *, n_ctx: int = 2048, threads: int | None = None
    ) -> LlamaCppBackend:
        return cls(LlamaCppModel(gguf_path, n_ctx=n_ctx, threads=threads), tokenizer)

    def generate(
        self,
        prompts: Sequence[str],
        *,
        max_new_tokens: int = 256,
        stop: Sequence[str] = (),
        temperature: float = 0.0,
        num_samples: int = 1,
        progress=None,
        **_ignored,
    ) -> list:
        from infir.eval.generate import Generation

        if temperature != 0 or num_samples != 1:
            raise ValueError("the llama.cpp backend decodes greedily (temperature 0, one sample per prompt)")
        stops = [s for s in stop if s]
        window = max((len(s) for s in stops), default=0) + 4
        stats = _Stats(prompts=len(prompts))
        results = []
        t0 = time.perf_counter()
        for prompt in prompts:
            ids = self.model.tokenize(prompt) or [self.model.llm.token_eos()]

            def hit(out: list[int]) -> bool:
                return bool(stops) and any(s in self.model.detokenize(out[-window:]) for s in stops)

            run = self.model.greedy(ids, max_new_tokens, should_stop=hit)
            text = self.model.detokenize(run.token_ids)
            cut = [i for i in (text.find(s) for s in stops) if i >= 0]
            results.append(
                Generation(
                    text=text[: min(cut)] if cut else text,
                    finish_reason=run.finish_reason,
                    token_ids=run.token_ids,
                    prompt_tokens=len(ids),
                    new_tokens=len(run.token_ids),
                )
            )
            stats.new_tokens += len(run.token_ids)
            if progress is not None:
                progress(1)
        stats.seconds = time.perf_counter() - t0
        self.last_stats = stats
        return results

    def loglikelihood(self, requests: Sequence[tuple[str, str]], batch_size: int = 16, progress=None) -> list:
        from infir.eval.loglik import Scored

        if self._scorer is None:  # a second context that keeps every position's logits
            m = self.model
            self._scorer = LlamaCppModel(m.path, n_ctx=m.n_ctx, threads=m.threads, logits_all=True)
        results = []
        for context, continuation in requests:
            # As lm-evaluation-harness: trailing spaces of the context belong to the continuation.
            spaces = len(context) - len(context.rstrip())
            if spaces:
                context, continuation = context[:-spaces], context[-spaces:] + continuation
            ctx = self._scorer.tokenize(context)
            whole = self._scorer.tokenize(context + continuation)
            cont = whole[len(ctx) :]
            if not cont:
                raise ValueError(f"continuation {continuation!r} encodes to no tokens")
            ctx = ctx or [self._scorer.llm.token_eos()]
            logprobs = self._scorer.prompt_logprobs(ctx + cont[:-1])
            rows = logprobs[len(ctx) - 1 :]
            total = float(sum(rows[i, t] for i, t in enumerate(cont)))
            greedy = all(int(rows[i].argmax()) == t for i, t in enumerate(cont))
            results.append(Scored(total, greedy))
            if progress is not None:
                progress(1)
        return results
