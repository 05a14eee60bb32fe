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
from infir.curate.dedup.hashing import finish_ngrams, ngram_accumulators, ngram_hashes, word_hashes_many
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
        raise DecontamError(
            f"decontamination: benchmark task {task!r} cannot be loaded {where}: "
            f"{type(e).__name__}: {e}. Give a local copy in `decontam.data_paths.{task}` "
            f"or remove it from `decontam.tasks`"
        ) from e
    if not texts:
        raise DecontamError(
            f"decontamination: benchmark task {task!r} has no texts"
            + (f" in {data_path}" if data_path else "")
        )
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


def _item_grams(text: str, hashes: np.ndarray, cfg: DecontamConfig) -> tuple[int, np.ndarray]:
    """(k, unique k-gram hashes) of one benchmark text from its word hashes: k = n, or its whole
    length when it is shorter but specific (see `short_text_is_specific`); k = 0 when it cannot
    be matched."""
    n = cfg.ngram
    if len(hashes) >= n:
        return n, np.unique(ngram_hashes(hashes, n))
    if short_text_is_specific(text, len(hashes), cfg.short_min_words):
        return len(hashes), ngram_hashes(hashes, len(hashes))
    return 0, hashes[:0]


def build_index(
    cfg: DecontamConfig, texts_of: TextSource = registry_texts, task_list: Iterable[str] | None = None
) -> tuple[dict[str, np.ndarray], dict]:
    """Arrays per task and n-gram length k: sorted hashes `task|k|h`, their benchmark item `task|k|i`,
    and each item's n-gram count `task|sizes`; plus a report of texts and n-grams per task."""
    tasks = list(task_list if task_list is not None else (cfg.tasks or registry_task_names()))
    index, report = {}, {}
    for task in tasks:
        by_k: dict[int, tuple[list, list]] = {}
        sizes = []
        texts = _task_texts(task, cfg.data_paths.get(task), texts_of)
        words = [
            w for start in range(0, len(texts), 1024) for w in word_hashes_many(texts[start : start + 1024])
        ]
        for item, (text, hashes) in enumerate(zip(texts, words)):
            k, grams = _item_grams(text, hashes, cfg)
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
        report[task] = {
            "texts": len(sizes),
            "ngrams": int(sum(sizes)),
            "short_texts": int(sum(len(v[0]) for k, v in by_k.items() if k != cfg.ngram)),
        }
    return index, report


def save_index(index: dict[str, np.ndarray], path: Path) -> None:
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez(tmp, **index)
    tmp.replace(path)


class DecontamIndex:
    """The saved index, merged over tasks: one sorted table per n-gram length, plus a presence
    mask on the low hash bits so that most of a document's n-grams skip the binary search."""

    _MASK_BITS = 22

    def __init__(self, path: str):
        with np.load(path) as data:
            arrays = {key: data[key] for key in data.files}
        self.tasks = sorted({key.split("|")[0] for key in arrays})
        self.sizes = np.concatenate([arrays[f"{t}|sizes"] for t in self.tasks]) if self.tasks else np.zeros(0)
        offsets = np.cumsum([0] + [len(arrays[f"{t}|sizes"]) for t in self.tasks])
        self.task_of_item = (
            np.repeat(np.arange(len(self.tasks)), np.diff(offsets)) if self.tasks else np.zeros(0)
        )
        tables: dict[int, tuple[list, list]] = {}
        for t, task in enumerate(self.tasks):
            for key in arrays:
                if key.startswith(f"{task}|") and key.endswith("|h"):
                    k = int(key.split("|")[1])
                    hashes, items = tables.setdefault(k, ([], []))
                    hashes.append(arrays[key])
                    items.append(arrays[key[:-1] + "i"] + offsets[t])
        self.tables = {}
        mask = np.uint64((1 << self._MASK_BITS) - 1)
        for k, (hashes, items) in sorted(tables.items()):
            h, i = np.concatenate(hashes), np.concatenate(items)
            order = np.argsort(h, kind="stable")
            present = np.zeros(1 << self._MASK_BITS, dtype=bool)
            present[(h & mask).astype(np.intp)] = True
            self.tables[k] = (h[order], i[order], present)
        self._mask = mask

    def matches(self, words: np.ndarray) -> dict[str, tuple[int, float]]:
        return self.matches_many([words])[0]

    def matches_many(self, words_of_docs: list[np.ndarray]) -> list[dict[str, tuple[int, float]]]:
        """Per document, {task: (n-grams shared with its most-shared item, share of that item's
        n-grams)}. The n-grams of all documents are hashed and looked up together."""
        best: list[dict[str, tuple[int, float]]] = [{} for _ in words_of_docs]
        lengths = [len(w) for w in words_of_docs]
        if not self.tables or not any(lengths):
            return best
        words = np.concatenate(words_of_docs)
        doc_of = np.repeat(np.arange(len(lengths)), lengths)
        doc_end = np.repeat(np.cumsum(lengths), lengths)  # one past each word's last sibling
        hit_doc, hit_gram, hit_item = [], [], []
        for k, acc in ngram_accumulators(words, [max(self.tables)]):
            if k not in self.tables:
                continue
            table, items, present = self.tables[k]
            grams = finish_ngrams(acc)
            candidates = np.flatnonzero(present[(grams & self._mask).astype(np.intp)])
            candidates = candidates[candidates + k <= doc_end[candidates]]  # n-grams inside one document
            if not len(candidates):
                continue
            pos = np.searchsorted(table, grams[candidates]).clip(max=len(table) - 1)
            found = table[pos] == grams[candidates]
            hit_doc.append(doc_of[candidates[found]])
            hit_gram.append(grams[candidates[found]])
            hit_item.append(items[pos[found]])
        if not hit_doc:
            return best
        docs, grams, item_of = np.concatenate(hit_doc), np.concatenate(hit_gram), np.concatenate(hit_item)
        # a phrase repeated in a document counts once; then n-grams per (document, item)
        _, first = np.unique(np.stack([docs.astype(np.uint64), grams]), axis=1, return_index=True)
        pairs, counts = np.unique(np.stack([docs[first], item_of[first]]), axis=1, return_counts=True)
        for doc, item, count in zip(pairs[0].tolist(), pairs[1].tolist(), counts.tolist()):
            task = self.tasks[self.task_of_item[item]]
            share = round(float(count / max(self.sizes[item], 1)), 4)
            if share > best[doc].get(task, (0, 0.0))[1]:
                best[doc][task] = (int(count), share)
        return best


def contamination_of(hits: dict[str, tuple[int, float]], cfg: DecontamConfig) -> dict:
    """The tasks a document is contaminated with, as {task: {"ngrams", "item_share"}}."""
    return {
        t: {"ngrams": h[0], "item_share": h[1]}
        for t, h in hits.items()
        if h[1] >= cfg.min_item_fraction and h[0] >= cfg.min_matches
    }


def contamination(index: DecontamIndex, words: np.ndarray, cfg: DecontamConfig) -> dict:
    return contamination_of(index.matches(words), cfg)


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
