"""Pluggable scorers: a reward model behind HTTP, or an LLM judge. Both give scores in [0, 1].

- `http`: POST {base_url}{path} with {"prompt": ..., "response": ...}; the reply's "score" (or
  "reward") is the score as the server gives it (a reward model server scales it to [0, 1]).
- `judge`: a chat teacher is asked `prompt` (with {prompt} and {response} filled) at temperature 0;
  the number after the last "Score:" (else the last number) divided by `scale`, clipped to [0, 1].

Both go through the request cache, like teachers, so a rerun scores nothing twice.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Sequence

from infir.synth.cache import ResponseCache, request_key
from infir.synth.config import ScorerConfig
from infir.synth.items import fill
from infir.synth.teachers import ChatRequest, RequestStats, build_teacher

_SCORE = re.compile(r"[Ss]core\s*[:=]?\s*\**\s*(-?\d+(?:\.\d+)?)")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def parse_judge_score(text: str, scale: float) -> float | None:
    found = _SCORE.findall(text) or _NUMBER.findall(text)
    if not found:
        return None
    return min(1.0, max(0.0, float(found[-1]) / scale))


class HttpScorer:
    def __init__(self, cfg: ScorerConfig, cache: ResponseCache | None, role: str = "scorer"):
        from infir.synth.http import JsonClient

        self.cfg, self.cache, self.role = cfg, cache, role
        self.client = JsonClient(cfg)
        self.namespace = f"http-scorer:{self.client.where}{cfg.path}"
        self.stats = RequestStats()

    def score_many(self, pairs: Sequence[tuple[str, str]], what: str = "") -> list[float | None]:
        from infir.synth.http import HttpError

        t0 = time.perf_counter()
        bodies = [{"prompt": p, "response": r} for p, r in pairs]
        keys = [request_key(self.namespace, b) for b in bodies]
        found = self.cache.get_many(keys) if self.cache is not None else {}
        missing = [i for i, k in enumerate(keys) if k not in found]
        scores: list[float | None] = [found[k]["score"] if k in found else None for k in keys]

        def store(j: int, reply) -> None:
            i = missing[j]
            if isinstance(reply, HttpError):
                self.stats.failed[reply.reason] = self.stats.failed.get(reply.reason, 0) + 1
                return
            value = reply.get("score", reply.get("reward")) if isinstance(reply, dict) else None
            if not isinstance(value, (int, float)):
                self.stats.failed["bad_reply"] = self.stats.failed.get("bad_reply", 0) + 1
                return
            scores[i] = float(value)
            if self.cache is not None:
                self.cache.put(keys[i], self.namespace, bodies[i], {"score": float(value)})

        self.client.post_many(self.cfg.path, (bodies[i] for i in missing), on_result=store)
        self.stats.asked += len(pairs)
        self.stats.cached += len(pairs) - len(missing)
        self.stats.sent += len(missing)
        self.stats.seconds += time.perf_counter() - t0
        return scores


class JudgeScorer:
    def __init__(
        self,
        cfg: ScorerConfig,
        cache: ResponseCache | None,
        role: str = "judge",
        run_dir: Path | None = None,
        show_progress: bool = True,
    ):
        self.cfg, self.role = cfg, role
        self.teacher = build_teacher(cfg.teacher, cache, role, run_dir, show_progress)  # type: ignore[arg-type]

    @property
    def stats(self) -> RequestStats:
        return self.teacher.stats

    def score_many(self, pairs: Sequence[tuple[str, str]], what: str = "") -> list[float | None]:
        t = self.cfg.teacher
        requests = [
            ChatRequest(
                messages=([{"role": "system", "content": t.system_prompt}] if t.system_prompt else [])  # type: ignore[union-attr]
                + [{"role": "user", "content": fill(self.cfg.prompt, prompt=p, response=r)}],
                temperature=0.0,
                max_tokens=t.max_tokens,
                seed=0,
                purpose="judge",
            )  # type: ignore[union-attr]
            for p, r in pairs
        ]
        return [
            None if c.error is not None else parse_judge_score(c.text, self.cfg.scale)
            for c in self.teacher.complete(requests, what)
        ]

    def close(self) -> None:
        self.teacher.close()


def build_scorer(
    cfg: ScorerConfig,
    cache: ResponseCache | None,
    role: str,
    run_dir: Path | None = None,
    show_progress: bool = True,
):
    if cfg.type == "http":
        return HttpScorer(cfg, cache, role)
    return JudgeScorer(cfg, cache, role, run_dir, show_progress)
