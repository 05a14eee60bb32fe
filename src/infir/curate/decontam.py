"""Decontamination: drop documents sharing word n-grams (10 by default, as InfiR) with a benchmark.

Benchmark texts come from the evaluation Task registry (`infir.eval.registry`): every task's
`decontamination_texts()` (questions and reference answers), from a local path per task or the
task's own loader. The index is a sorted array of 64-bit n-gram hashes built once on the driver
(`build_index`) and saved; each worker memory-maps it and checks a document's n-grams with one
vectorised `searchsorted`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
from datatrove.data import Document

from infir.curate.config import DecontamConfig
from infir.curate.hashing import ngram_hashes, word_hashes
from infir.curate.steps import CurateStep

TextSource = Callable[[str, str | None], Iterator[str]]


def registry_texts(task: str, data_path: str | None) -> Iterator[str]:
    from infir.eval.registry import get_task

    return get_task(task, data_path=data_path).decontamination_texts()


def registry_task_names() -> list[str]:
    from infir.eval.registry import task_names

    return list(task_names())


def text_ngrams(text: str, n: int) -> np.ndarray:
    hashes = word_hashes(text)
    if len(hashes) < n:  # a benchmark text shorter than n words is matched as a whole
        return ngram_hashes(hashes, len(hashes)) if len(hashes) >= max(4, n // 2) else hashes[:0]
    return ngram_hashes(hashes, n)


def build_index(cfg: DecontamConfig, texts_of: TextSource = registry_texts,
                task_list: Iterable[str] | None = None) -> tuple[dict[str, np.ndarray], dict]:
    """{task: sorted unique n-gram hashes} and a report of texts and n-grams per task."""
    tasks = list(task_list if task_list is not None else (cfg.tasks or registry_task_names()))
    index, report = {}, {}
    for task in tasks:
        grams, count = [], 0
        for text in texts_of(task, cfg.data_paths.get(task)):
            grams.append(text_ngrams(text, cfg.ngram))
            count += 1
        index[task] = np.unique(np.concatenate(grams)) if grams else np.zeros(0, dtype=np.uint64)
        report[task] = {"texts": count, "ngrams": int(len(index[task]))}
    return index, report


def save_index(index: dict[str, np.ndarray], path: Path) -> None:
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez(tmp, **index)
    tmp.replace(path)


class Decontaminate(CurateStep):
    name = "🧼 decontaminate"
    step_name = "decontam"

    def __init__(self, cfg: DecontamConfig, index_path: str, removed_dir: str | None = None):
        super().__init__(removed_dir)
        self.cfg = cfg
        self.index_path = index_path
        self._index: dict[str, np.ndarray] | None = None

    def setup(self, rank: int, world_size: int) -> None:
        if self._index is None:
            with np.load(self.index_path) as data:
                self._index = {task: data[task] for task in data.files}

    def matches(self, text: str) -> dict[str, int]:
        grams = np.unique(ngram_hashes(word_hashes(text), self.cfg.ngram)) if text else None
        hits = {}
        if grams is None or len(grams) == 0:
            return hits
        for task, table in self._index.items():
            if len(table) == 0:
                continue
            pos = np.searchsorted(table, grams).clip(max=len(table) - 1)
            count = int((table[pos] == grams).sum())
            if count:
                hits[task] = count
        return hits

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        hits = self.matches(doc.text)
        if hits and max(hits.values()) >= self.cfg.min_matches:
            task = max(hits, key=hits.get)
            doc.metadata["contaminated_with"] = task
            doc.metadata["contamination_ngrams"] = hits
            return False, f"contaminated:{task}"
        return True
