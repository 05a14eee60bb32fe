"""Decontamination: drop documents sharing word n-grams (10 by default, as InfiR) with a benchmark.

Benchmark texts come from the evaluation Task registry (`infir.eval.registry`): every task's
`decontamination_texts()` (questions and reference answers), from a local path per task or the
task's own loader. The index is, per task, a sorted array of 64-bit n-gram hashes with the benchmark item each comes
from, built once on the driver (`build_index`) and saved; each worker loads it and checks a
document's n-grams with one vectorised `searchsorted`. A document is contaminated when it holds at
least `min_item_fraction` of one benchmark item's n-grams: quoting a question is caught, sharing a
stock phrase or formula with some solution is not. Benchmark texts shorter than n words are matched
as a whole when they are specific enough (short problems such as "Simplify $\\sqrt{242}$."), and
ignored when they are short answers that clean pages share by chance.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
from datatrove.data import Document

from infir.curate.config import DecontamConfig
from infir.curate.hashing import ngram_hashes, word_hashes
from infir.curate.steps import CurateStep

TextSource = Callable[[str, str | None], Iterator[str]]


class DecontamError(ValueError):
    """A benchmark listed for decontamination cannot be loaded; the message names the task."""


def registry_texts(task: str, data_path: str | None) -> Iterator[str]:
    from infir.eval.registry import get_task

    return get_task(task, data_path=data_path).decontamination_texts()


def _task_texts(task: str, data_path: str | None, texts_of: TextSource) -> list[str]:
    """Every text of one task, or a DecontamError naming it: running on with no n-grams for a
    benchmark would silently leave its contamination in the data."""
    try:
        texts = [t for t in texts_of(task, data_path) if t]
    except Exception as e:  # noqa: BLE001 - whatever the loader raised, the task is named
        where = f"from {data_path}" if data_path else "from its default source (the Hugging Face hub)"
        raise DecontamError(f"decontamination: benchmark task {task!r} cannot be loaded {where}: "
                            f"{type(e).__name__}: {e}. Give a local copy in `decontam.data_paths.{task}` "
                            f"or remove it from `decontam.tasks`") from e
    if not texts:
        raise DecontamError(f"decontamination: benchmark task {task!r} has no texts"
                            + (f" in {data_path}" if data_path else ""))
    return texts


def registry_task_names() -> list[str]:
    from infir.eval.registry import task_names

    return list(task_names())


_FORMULA = re.compile(r"\$[^$]*\$|\\\(.*?\\\)|\\\[.*?\\\]", re.S)
_PROSE_WORD = re.compile(r"[A-Za-z]{3,}")


def short_text_is_specific(text: str, n_words: int, min_words: int) -> bool:
    """Whether a benchmark text shorter than n words still identifies its item when quoted: it has
    `min_words` words, or it is a short problem, an instruction around a formula ("Simplify
    $\\sqrt{242}$."). Short answers ("Inositol triphosphate", "\\frac{1}{2}") are stock phrases
    found in clean pages and are left out."""
    if n_words >= min_words:
        return True
    if n_words < 2:
        return False
    prose = _FORMULA.sub(" ", text)
    return prose != text and _PROSE_WORD.search(prose) is not None


def _item_grams(text: str, cfg: DecontamConfig) -> tuple[int, np.ndarray]:
    """(k, unique k-gram hashes) of one benchmark text: k = n, or its whole length when it is
    shorter but specific (see `short_text_is_specific`); k = 0 when it cannot be matched."""
    n = cfg.ngram
    hashes = word_hashes(text)
    if len(hashes) >= n:
        return n, np.unique(ngram_hashes(hashes, n))
    if short_text_is_specific(text, len(hashes), cfg.short_min_words):
        return len(hashes), ngram_hashes(hashes, len(hashes))
    return 0, hashes[:0]


def build_index(cfg: DecontamConfig, texts_of: TextSource = registry_texts,
                task_list: Iterable[str] | None = None) -> tuple[dict[str, np.ndarray], dict]:
    """Arrays per task and n-gram length k: sorted hashes `task|k|h`, their benchmark item `task|k|i`,
    and each item's n-gram count `task|sizes`; plus a report of texts and n-grams per task."""
    tasks = list(task_list if task_list is not None else (cfg.tasks or registry_task_names()))
    index, report = {}, {}
    for task in tasks:
        by_k: dict[int, tuple[list, list]] = {}
        sizes = []
        for item, text in enumerate(_task_texts(task, cfg.data_paths.get(task), texts_of)):
            k, grams = _item_grams(text, cfg)
            sizes.append(len(grams))
            if k:
                hashes, items = by_k.setdefault(k, ([], []))
                hashes.append(grams)
                items.append(np.full(len(grams), item, dtype=np.int32))
        for k, (hashes, items) in by_k.items():
            h, i = np.concatenate(hashes), np.concatenate(items)
            order = np.argsort(h, kind="stable")
            index[f"{task}|{k}|h"], index[f"{task}|{k}|i"] = h[order], i[order]
        index[f"{task}|sizes"] = np.array(sizes, dtype=np.int32)
        report[task] = {"texts": len(sizes), "ngrams": int(sum(sizes)), "short_texts": int(
            sum(len(v[0]) for k, v in by_k.items() if k != cfg.ngram))}
    return index, report


def save_index(index: dict[str, np.ndarray], path: Path) -> None:
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez(tmp, **index)
    tmp.replace(path)


class DecontamIndex:
    """The saved index, merged over tasks: one sorted table per n-gram length."""

    def __init__(self, path: str):
        with np.load(path) as data:
            arrays = {key: data[key] for key in data.files}
        self.tasks = sorted({key.split("|")[0] for key in arrays})
        self.sizes = np.concatenate([arrays[f"{t}|sizes"] for t in self.tasks]) if self.tasks else np.zeros(0)
        offsets = np.cumsum([0] + [len(arrays[f"{t}|sizes"]) for t in self.tasks])
        self.task_of_item = np.repeat(np.arange(len(self.tasks)), np.diff(offsets)) if self.tasks else np.zeros(0)
        tables: dict[int, tuple[list, list]] = {}
        for t, task in enumerate(self.tasks):
            for key in arrays:
                if key.startswith(f"{task}|") and key.endswith("|h"):
                    k = int(key.split("|")[1])
                    hashes, items = tables.setdefault(k, ([], []))
                    hashes.append(arrays[key])
                    items.append(arrays[key[:-1] + "i"] + offsets[t])
        self.tables = {}
        for k, (hashes, items) in sorted(tables.items()):
            h, i = np.concatenate(hashes), np.concatenate(items)
            order = np.argsort(h, kind="stable")
            self.tables[k] = (h[order], i[order])

    def matches(self, words: np.ndarray) -> dict[str, tuple[int, float]]:
        """{task: (n-grams shared with its most-shared item, share of that item's n-grams)}."""
        best: dict[str, tuple[int, float]] = {}
        for k, (table, items) in self.tables.items():
            if len(words) < k:
                continue
            grams = np.sort(ngram_hashes(words, k))
            pos = np.searchsorted(table, grams).clip(max=len(table) - 1)
            found = table[pos] == grams
            if not found.any():
                continue
            hit = np.unique(grams[found])  # a phrase repeated in the document counts once
            counts = np.bincount(items[np.searchsorted(table, hit)])
            for item in np.flatnonzero(counts):
                task = self.tasks[self.task_of_item[item]]
                share = float(counts[item] / max(self.sizes[item], 1))
                if share > best.get(task, (0, 0.0))[1]:
                    best[task] = (int(counts[item]), round(share, 4))
        return best


def contamination(index: DecontamIndex, words: np.ndarray, cfg: DecontamConfig) -> dict:
    """The tasks a document is contaminated with, as {task: {"ngrams", "item_share"}}."""
    return {t: {"ngrams": h[0], "item_share": h[1]} for t, h in index.matches(words).items()
            if h[1] >= cfg.min_item_fraction and h[0] >= cfg.min_matches}


class Decontaminate(CurateStep):
    """Drops documents the scan found contaminated (their n-grams were matched there, with the word
    hashes MinHash needs anyway; decisions depend on the document alone, so where they are computed
    does not change them)."""

    name = "🧼 decontaminate"
    step_name = "decontam"

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        hits = doc.metadata.get("_contamination") or {}
        if hits:
            task = max(hits, key=lambda t: hits[t]["item_share"])
            doc.metadata["contaminated_with"] = task
            doc.metadata["contamination"] = hits
            return False, f"contaminated:{task}"
        return True
