"""Quality annotation: documents scored 0-5 by an OpenAI-compatible teacher, FineWeb-Edu style.

Requests go through synth's teacher (`OpenAITeacher`: `JsonClient` concurrency, retries, rate limit; the
`ResponseCache`), so a rerun or a resumed run sends only what was never answered, and the API key is
read from the environment variable the config names and never written anywhere. Replies without a
parsable score are counted and left out of the labels (a label the quality classifier would learn
from must be a number the teacher gave).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

from infir.inputs.config import PROMPTS, AnnotateConfig


@dataclass(frozen=True)
class Prompt:
    user: str
    score_regex: str
    system: str | None = None

    def messages(self, text: str) -> list[dict]:
        out = [{"role": "system", "content": self.system}] if self.system else []
        return out + [{"role": "user", "content": self.user.replace("{text}", text)}]

    def parse(self, reply: str) -> int | None:
        """The last score the reply states (a model may quote the format before concluding)."""
        found = re.findall(self.score_regex, reply)
        return int(found[-1]) if found else None


def load_prompt(name_or_path: str) -> Prompt:
    path = Path(name_or_path)
    if not path.is_file():
        path = PROMPTS / f"{name_or_path}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in PROMPTS.glob("*.yaml"))
        raise FileNotFoundError(f"annotation prompt {name_or_path!r}: not a file, nor one of {known}")
    spec = yaml.safe_load(path.read_text())
    if "{text}" not in spec.get("user", ""):
        raise ValueError(f"annotation prompt {path}: `user` must hold the placeholder {{text}}")
    re.compile(spec["score_regex"])
    return Prompt(user=spec["user"], score_regex=spec["score_regex"], system=spec.get("system"))


def annotate(texts: Iterable[str], cfg: AnnotateConfig, teacher, stats: Counter) -> Iterator[dict]:
    """{"text", "score"} per document the teacher scored, in input order, `cfg.batch` requests at a time.
    `teacher` is a synth Teacher; `stats` counts scores, unparsed replies and failed requests."""
    from infir.synth.teachers import ChatRequest

    prompt = load_prompt(cfg.prompt)
    t = cfg.teacher
    batch: list[str] = []

    def flush() -> Iterator[dict]:
        # one fixed seed: the same document asks the same request, so the cache answers it on a rerun
        requests = [
            ChatRequest(
                prompt.messages(text[: cfg.max_chars]),
                temperature=t.temperature,
                max_tokens=t.max_tokens,
                seed=t.seed,
                top_p=t.top_p,
                purpose="label",
            )
            for text in batch
        ]
        for text, done in zip(batch, teacher.complete(requests, "annotate")):
            if done.error is not None:
                stats["failed"] += 1
                continue
            score = prompt.parse(done.text)
            if score is None:
                stats["unparsed"] += 1
                continue
            stats[f"score_{score}"] += 1
            yield {"text": text, "score": score}
        batch.clear()

    for text in texts:
        batch.append(text)
        if len(batch) >= cfg.batch:
            yield from flush()
    if batch:
        yield from flush()
