"""Teachers: whatever answers chat requests. Every teacher asks through the request cache.

    teacher = build_teacher(cfg.teacher, cache, role="teacher", run_dir=run_dir)
    completions = teacher.complete([ChatRequest(messages, temperature=0.7, max_tokens=512, seed=3)])

- `OpenAITeacher`: any OpenAI-compatible `/chat/completions` server (vLLM, SGLang, llama.cpp, hosted
  APIs) through `JsonClient` (concurrency, retries, rate limit). One request per sample, each with its
  own `seed`, so samples are distinct cache entries and servers without `n` support work.
- `LocalTeacher`: a transformers model in this process through the eval generator (batched).
- `GeneratedTeacher` (`infir.synth.generated`): the tiny recipe's teacher.

A request's cache key is its body (what the server sees minus headers) in the teacher's namespace, so a
rerun, a resumed run or a second stage using the same teacher sends only what was never answered. Replies
are cached the moment they arrive; failures are not cached, so the next run asks again.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from infir.synth.cache import ResponseCache, request_key
from infir.synth.config import TeacherConfig

log = logging.getLogger("infir.synth")


@dataclass
class ChatRequest:
    messages: list[dict]
    temperature: float
    max_tokens: int
    seed: int
    top_p: float = 1.0
    purpose: str = "answer"  # answer | evolve | judge | label: what the request is for (not sent)
    # What a local teacher that understands structure (the generated teacher) may read instead of
    # parsing the prompt; derived from the request, so it never changes the answer or the key.
    hint: dict = field(default_factory=dict)


@dataclass
class Completion:
    text: str
    finish_reason: str = "stop"  # stop | length
    error: str | None = None  # why no answer came (after retries); such completions are not cached
    cached: bool = False

    def to_cache(self) -> dict:
        return {"text": self.text, "finish_reason": self.finish_reason}


@dataclass
class RequestStats:
    asked: int = 0
    cached: int = 0
    sent: int = 0
    failed: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        rate = self.sent / self.seconds if self.seconds > 0 else 0.0
        return {
            "asked": self.asked,
            "cached": self.cached,
            "sent": self.sent,
            "failed": dict(self.failed),
            "seconds": round(self.seconds, 3),
            "sent_per_second": round(rate, 2),
        }


Done = Callable[[int, Completion], None]


class Teacher(ABC):
    """Answers ChatRequests; subclasses implement `body` (the cache identity) and `_complete`."""

    namespace: str
    # Replies stored per cache transaction. HTTP replies are dear and arrive one by one: each is committed
    # on arrival, so a kill loses none. In-process teachers answer in batches far faster than a commit.
    write_batch: int = 1

    def __init__(self, cache: ResponseCache | None, role: str = "teacher", show_progress: bool = True):
        self.cache, self.role, self.show_progress = cache, role, show_progress
        self.stats = RequestStats()

    @abstractmethod
    def body(self, req: ChatRequest) -> dict:
        """The request as the backend sees it (no headers): its cache identity."""

    @abstractmethod
    def _complete(self, requests: Sequence[ChatRequest], done: Done) -> None:
        """Answer `requests`, calling `done(i, completion)` as each answer arrives (any thread)."""

    def complete(self, requests: Sequence[ChatRequest], what: str = "") -> list[Completion]:
        t0 = time.perf_counter()
        bodies = [self.body(r) for r in requests]
        keys = [request_key(self.namespace, b) for b in bodies]
        found = self.cache.get_many(keys) if self.cache is not None else {}
        out: list[Completion | None] = [None] * len(requests)
        missing: list[int] = []
        first_of: dict[str, int] = {}
        for i, key in enumerate(keys):
            if key in found:
                out[i] = Completion(**found[key], cached=True)
            elif key in first_of:  # the same request twice in one batch: asked once
                continue
            else:
                first_of[key] = i
                missing.append(i)
        self.stats.asked += len(requests)
        self.stats.cached += sum(1 for k in keys if k in found)
        progress = Progress(
            TextColumn(f"[bold]synth {self.role}[/] {what}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            transient=True,
            disable=not self.show_progress or not missing,
        )

        pending: list[tuple] = []

        def done(j: int, completion: Completion) -> None:
            i = missing[j]
            out[i] = completion
            if completion.error is None and self.cache is not None:
                pending.append((keys[i], self.namespace, bodies[i], completion.to_cache()))
                if len(pending) >= self.write_batch:
                    flush()
            progress.advance(bar)

        def flush() -> None:
            entries = pending[:]
            del pending[: len(entries)]
            self.cache.put_many(entries)  # type: ignore[union-attr]

        with progress:
            bar = progress.add_task(what, total=len(missing))
            if missing:
                self._complete([requests[i] for i in missing], done)
        if pending:
            flush()
        for i, key in enumerate(keys):  # duplicates within the batch share the first one's answer
            if out[i] is None:
                out[i] = out[first_of[key]]
        self.stats.sent += len(missing)
        for j in missing:
            err = out[j].error  # type: ignore[union-attr]
            if err is not None:
                reason = err.split(":", 1)[0]
                self.stats.failed[reason] = self.stats.failed.get(reason, 0) + 1
        seconds = time.perf_counter() - t0
        self.stats.seconds += seconds
        if missing:
            log.info(
                "synth %s %s: %d requests, %d answered from cache, %d sent in %.1fs (%.1f/s)",
                self.role,
                what,
                len(requests),
                len(requests) - len(missing),
                len(missing),
                seconds,
                len(missing) / max(seconds, 1e-9),
            )
        return out  # type: ignore[return-value]

    def close(self) -> None:
        """Release what the teacher holds (models, connections)."""


class OpenAITeacher(Teacher):
    def __init__(
        self,
        cfg: TeacherConfig,
        cache: ResponseCache | None,
        role: str = "teacher",
        show_progress: bool = True,
    ):
        from infir.synth.http import JsonClient

        super().__init__(cache, role, show_progress)
        self.cfg = cfg
        self.client = JsonClient(cfg)
        self.namespace = cfg.cache_namespace or f"openai:{cfg.model}"

    def body(self, req: ChatRequest) -> dict:
        return {
            "model": self.cfg.model,
            "messages": req.messages,
            "temperature": req.temperature,
            "top_p": req.top_p,
            "max_tokens": req.max_tokens,
            "seed": req.seed,
            **self.cfg.extra_body,
        }

    def _complete(self, requests: Sequence[ChatRequest], done: Done) -> None:
        from infir.synth.http import HttpError

        def parse(j: int, reply: dict | HttpError) -> None:
            if isinstance(reply, HttpError):
                done(j, Completion("", "error", error=f"{reply.reason}: {reply}"))
                return
            try:
                choice = reply["choices"][0]
                text = choice["message"]["content"]
                finish = choice.get("finish_reason") or "stop"
            except (KeyError, IndexError, TypeError):
                done(
                    j, Completion("", "error", error=f"bad_reply: not a chat completion: {str(reply)[:200]}")
                )
                return
            if not isinstance(text, str):
                done(j, Completion("", "error", error="empty_reply: the message has no text content"))
                return
            done(j, Completion(text, "length" if finish == "length" else "stop"))

        self.client.post_many("/chat/completions", (self.body(r) for r in requests), on_result=parse)


def _weights_fingerprint(path: Path) -> str:
    """Size and mtime of the weight files: a retrained checkpoint in the same folder is another model."""
    files = sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin"))
    return ",".join(f"{f.name}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in files) or "no-weights"


class LocalTeacher(Teacher):
    """A transformers model in-process. Requests with the same sampling settings are generated together,
    `batch_size` rows at a time; a chunk's answers are cached as soon as it is done."""

    write_batch = 64

    def __init__(
        self,
        cfg: TeacherConfig,
        model_path: str,
        cache: ResponseCache | None,
        role: str = "teacher",
        show_progress: bool = True,
    ):
        from infir.eval.generate import Generator

        super().__init__(cache, role, show_progress)
        self.cfg = cfg
        self.generator = Generator.from_pretrained(model_path, cfg.device, cfg.dtype)
        tok = self.generator.tokenizer
        chat = cfg.prompt_format == "chat" or (cfg.prompt_format == "auto" and bool(tok.chat_template))
        if chat and not tok.chat_template:
            raise ValueError(f"{model_path}: prompt_format is chat but the tokenizer has no chat template")
        self.chat = chat
        local = Path(model_path)
        identity = _weights_fingerprint(local) if local.is_dir() else "hub"
        self.namespace = cfg.cache_namespace or f"local:{model_path}:{identity}"

    def render(self, req: ChatRequest) -> str:
        if self.chat:
            return self.generator.tokenizer.apply_chat_template(
                req.messages, tokenize=False, add_generation_prompt=True
            )
        user = [m["content"] for m in req.messages if m["role"] == "user"]
        return self.cfg.base_template.format(prompt=user[-1] if user else "")

    def body(self, req: ChatRequest) -> dict:
        return {
            "prompt": self.render(req),
            "temperature": req.temperature,
            "top_p": req.top_p,
            "max_tokens": req.max_tokens,
            "seed": req.seed,
            "stop": list(self.cfg.stop),
        }

    def _complete(self, requests: Sequence[ChatRequest], done: Done) -> None:
        groups: dict[tuple, list[int]] = {}
        for j, r in enumerate(requests):
            groups.setdefault((r.temperature, r.top_p, r.max_tokens), []).append(j)
        chunk = self.cfg.batch_size * 4
        for (temperature, top_p, max_tokens), members in groups.items():
            for start in range(0, len(members), chunk):
                part = members[start : start + chunk]
                gens = self.generator.generate(
                    [self.render(requests[j]) for j in part],
                    max_new_tokens=max_tokens,
                    stop=self.cfg.stop,
                    temperature=temperature,
                    top_p=top_p,
                    seed=requests[part[0]].seed,
                    batch_size=self.cfg.batch_size,
                )
                for j, g in zip(part, gens):
                    done(j, Completion(g.text.strip(), "length" if g.finish_reason == "length" else "stop"))

    def close(self) -> None:
        self.generator = None  # type: ignore[assignment]


def resolve_model_path(model: str, run_dir: Path | None) -> str:
    """A stage name (`anneal`) is that stage's final checkpoint in this run; anything else is used as given."""
    from infir.run import FINAL
    from infir.stages import is_checkpoint_stage

    if not is_checkpoint_stage(model):
        return model
    if run_dir is None:
        raise ValueError(f"teacher model {model!r} needs a run directory")
    path = run_dir / model / FINAL
    if not path.is_dir():
        raise FileNotFoundError(f"teacher model {model!r}: {path} does not exist (run `infir {model}` first)")
    return str(path)


def build_teacher(
    cfg: TeacherConfig,
    cache: ResponseCache | None,
    role: str = "teacher",
    run_dir: Path | None = None,
    show_progress: bool = True,
) -> Teacher:
    if cfg.type == "openai":
        return OpenAITeacher(cfg, cache, role, show_progress)
    if cfg.type == "local":
        return LocalTeacher(cfg, resolve_model_path(cfg.model or "", run_dir), cache, role, show_progress)
    from infir.synth.generated import GeneratedTeacher

    return GeneratedTeacher(cfg, cache, role, show_progress)
