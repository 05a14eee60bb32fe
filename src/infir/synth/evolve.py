"""Instruction evolution: the teacher rewrites items (harder, more constrained, more diverse).

Round r rewrites a hash-chosen `fraction` of the items round r-1 produced (round 1: the seeds), each
with one strategy chosen by hash, so a rerun picks the same items and strategies (and hits the cache).
An evolved item keeps `seed_id` (its seed) and `parent_id`; it has no reference answer (the rewrite
changed it) and no task document (a seed's tests do not test the rewrite), so its math answers are
verified by majority vote. Rewrites that come back empty, unchanged, too long, refused or identical to
an existing prompt are dropped and counted by reason.
"""

from __future__ import annotations

import re
from collections import Counter

from infir.synth.config import EvolveConfig
from infir.synth.items import Item, fill, stable_fraction, stable_int
from infir.synth.teachers import ChatRequest, Teacher

_LABEL = re.compile(
    r"^\s*(?:\*\*)?(?:new|rewritten|evolved)?\s*(?:problem|question|instruction)\s*:?(?:\*\*)?\s*:?\s*",
    re.IGNORECASE,
)
_REFUSAL = ("i cannot", "i can't", "i'm sorry", "i am sorry", "sorry,", "as an ai")


def clean_rewrite(text: str) -> str:
    text = text.strip()
    if text.startswith("```") and text.endswith("```"):
        text = text.strip("`").strip()
    text = _LABEL.sub("", text, count=1).strip()
    if len(text) > 1 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1].strip()
    return text


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def evolve(
    items: list[Item], teacher: Teacher, cfg: EvolveConfig, seed: int = 0, system_prompt: str | None = None
) -> tuple[list[Item], dict]:
    """The evolved items of every round, and counts per round and reason."""
    strategies = sorted(cfg.strategies)
    seen = {_norm(i.prompt) for i in items}
    parents, evolved = items, []
    requested, rejected, accepted = 0, Counter(), Counter()
    for round_ in range(1, cfg.rounds + 1):
        chosen = [p for p in parents if stable_fraction(seed, "evolve", round_, p.id) < cfg.fraction]
        picks = [strategies[stable_int(seed, "strategy", round_, p.id) % len(strategies)] for p in chosen]
        requests = [
            ChatRequest(
                messages=([{"role": "system", "content": system_prompt}] if system_prompt else [])
                + [{"role": "user", "content": fill(cfg.strategies[s], prompt=p.prompt)}],
                temperature=cfg.temperature,
                max_tokens=cfg.max_tokens,
                seed=stable_int(seed, "evolve", round_, p.id),
                purpose="evolve",
                hint={"question": p.prompt, "strategy": s},
            )
            for p, s in zip(chosen, picks)
        ]
        requested += len(requests)
        produced = []
        for parent, strategy, c in zip(chosen, picks, teacher.complete(requests, f"evolve round {round_}")):
            text = clean_rewrite(c.text) if c.error is None else ""
            if c.error is not None:
                reason = "request_failed"
            elif c.finish_reason == "length":
                reason = "truncated"
            elif not text:
                reason = "empty"
            elif len(text) > cfg.max_chars:
                reason = "too_long"
            elif _norm(text) == _norm(parent.prompt):
                reason = "unchanged"
            elif text.lower().startswith(_REFUSAL):
                reason = "refused"
            elif _norm(text) in seen:
                reason = "duplicate"
            else:
                reason = None
            if reason is not None:
                rejected[reason] += 1
                continue
            seen.add(_norm(text))
            accepted[strategy] += 1
            produced.append(
                Item(
                    id=f"{parent.id}~{strategy}{round_}",
                    prompt=text,
                    domain=parent.domain,
                    source=parent.source,
                    seed_id=parent.seed_id,
                    parent_id=parent.id,
                    evolution=[*parent.evolution, strategy],
                    label=parent.label,
                )
            )
        evolved += produced
        parents = produced
    return evolved, {
        "rounds": cfg.rounds,
        "requested": requested,
        "accepted": sum(accepted.values()),
        "by_strategy": dict(accepted),
        "rejected": dict(rejected),
    }
