"""Selection: dedup and decontamination of prompts, rejection sampling, difficulty, quality, labels.

Dedup is curation's (`infir.curate.dedup.minhash`: exact hash, MinHash-LSH), run over prompts in order, so a seed
is kept over a later evolved copy of it. Decontamination is curation's n-gram index over the Task
registry's `decontamination_texts()`: every benchmark we evaluate on is one we keep out of SFT data.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Sequence

import numpy as np

from infir.curate.config import DecontamConfig, DedupConfig
from infir.synth.items import Candidate, Item, fill


def dedup_prompts(items: list[Item], cfg: DedupConfig) -> tuple[list[Item], Counter]:
    from infir.curate.dedup.minhash import MinHasher, exact_hash, find_duplicates

    if not cfg.enabled or not items:
        return items, Counter()
    exact = np.array([exact_hash(i.prompt.lower()) for i in items], dtype=np.uint64)
    hasher = MinHasher(cfg)
    sigs = (
        np.stack([hasher.signature(i.prompt) for i in items])
        if cfg.minhash
        else np.zeros((len(items), hasher.num_perm), dtype=np.uint32)
    )
    removed = find_duplicates(exact, sigs, cfg)
    reasons = Counter(reason for _, reason in removed.values())
    return [item for n, item in enumerate(items) if n not in removed], reasons


class Decontaminator:
    """Finds texts sharing `ngram`-word sequences with benchmark items (see `infir.curate.filters.decontam`)."""

    def __init__(self, cfg: DecontamConfig, workdir: Path):
        from infir.curate.filters.decontam import DecontamIndex, build_index, registry_task_names, save_index

        self.cfg = cfg
        tasks = cfg.tasks if cfg.tasks is not None else registry_task_names()
        self.enabled = cfg.enabled and bool(tasks)
        self.report: dict = {}
        if not self.enabled:
            return
        arrays, self.report = build_index(cfg, task_list=tasks)
        path = Path(workdir) / "decontam_index.npz"
        path.parent.mkdir(parents=True, exist_ok=True)
        save_index(arrays, path)
        self.index = DecontamIndex(str(path))

    def contaminated_with(self, text: str) -> str | None:
        if not self.enabled:
            return None
        from infir.curate.filters.decontam import contamination
        from infir.curate.dedup.hashing import word_hashes

        hits = contamination(self.index, word_hashes(text), self.cfg)
        return max(hits, key=lambda t: hits[t]["item_share"]) if hits else None

    def split(self, items: list[Item], text_of=lambda i: i.prompt) -> tuple[list[Item], Counter]:
        kept, reasons = [], Counter()
        for item in items:
            task = self.contaminated_with(text_of(item))
            if task is None:
                kept.append(item)
            else:
                reasons[f"contaminated:{task}"] += 1
        return kept, reasons


def rejection_sample(
    items: Sequence[Item], candidates: dict[str, list[Candidate]], max_per_prompt: int
) -> tuple[dict[str, list[Candidate]], Counter]:
    """Verified answers only: per item, up to `max_per_prompt` distinct ones, in sample order."""
    kept: dict[str, list[Candidate]] = {}
    dropped: Counter = Counter()
    for item in items:
        chosen, texts = [], set()
        for c in candidates.get(item.id, []):
            key = " ".join(c.text.split())
            if c.verified and key not in texts:
                texts.add(key)
                chosen.append(c)
            if len(chosen) == max_per_prompt:
                break
        if chosen:
            kept[item.id] = chosen
        else:
            dropped["no_verified_answer"] += 1
    return kept, dropped


def pass_rates(items: Sequence[Item], samples: dict[str, list[Candidate]]) -> dict[str, float]:
    return {
        i.id: sum(c.verified for c in samples[i.id]) / len(samples[i.id]) for i in items if samples.get(i.id)
    }


def in_range(value: float | None, low: float, high: float) -> bool:
    return value is None or low - 1e-9 <= value <= high + 1e-9


def pick_label(reply: str, choices: Sequence[str]) -> str | None:
    """The choice a labeler's reply names (the earliest mentioned when several are)."""
    text = reply.lower()
    found = [(text.find(c.lower()), -len(c), c) for c in choices if c.lower() in text]
    return min(found)[2] if found else None


def label_requests(items: Sequence[Item], prompt: str, choices: Sequence[str], max_tokens: int):
    from infir.synth.teachers import ChatRequest

    return [
        ChatRequest(
            messages=[{"role": "user", "content": fill(prompt, prompt=i.prompt, choices=", ".join(choices))}],
            temperature=0.0,
            max_tokens=min(max_tokens, 32),
            seed=0,
            purpose="label",
        )
        for i in items
    ]


def summarize(values: list[float]) -> dict:
    if not values:
        return {"n": 0}
    arr = np.asarray(values, dtype=float)
    hist = np.histogram(arr, bins=5, range=(0.0, 1.0))[0]
    return {"n": len(values), "mean": round(float(arr.mean()), 4), "histogram_0_to_1": hist.tolist()}
