"""Seed instructions from JSONL files, Hugging Face datasets, generated problems or registry tasks.

A record without a usable prompt fails with its file and line; a record whose reference answer cannot
be read (e.g. a GSM8K answer without `#### N`) is dropped and counted, since the prompt alone would be
verified by majority vote, which is not what a seed with an answer field promised.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Iterator

from infir.eval.answers import last_boxed, normalize_number
from infir.eval.loading import DataError, read_records
from infir.synth.config import SeedSource
from infir.synth.items import Item


def reference_answer(raw: object, fmt: str) -> str | None:
    """The final answer held in a seed's answer field: as is, after `####` (GSM8K), or the last box."""
    if raw is None:
        return None
    text = str(raw).strip()
    if fmt == "gsm8k":
        if "####" not in text:
            return None
        value = text.rsplit("####", 1)[-1].strip()
        return normalize_number(value) or value or None
    if fmt == "boxed":
        return last_boxed(text)
    return text or None


def _records(src: SeedSource, task) -> Iterator[tuple[str, dict]]:
    """(where, record) pairs; `where` names the file and line (or dataset and row) for messages."""
    if src.type == "jsonl":
        path = Path(src.path)  # type: ignore[arg-type]
        if not path.is_file():
            raise DataError(f"seed file {path} does not exist")
        for i, record in enumerate(read_records(path)):
            yield f"{path} record {i + 1}", record
    elif src.type == "hf":
        from infir.eval.loading import load_hf

        for i, record in enumerate(load_hf(src.name, src.subset, src.split)):  # type: ignore[arg-type]
            yield f"{src.name}[{src.split}] row {i}", record
    elif src.type == "generated":
        from infir.data import reasoning

        for family in src.families:
            for i, p in enumerate(reasoning.generate(family, src.per_family, seed=src.seed, split="train")):
                yield f"generated:{family}#{i}", p.to_dict()
    elif src.type == "task":
        for i, doc in enumerate(task.docs()):
            yield f"{src.task}[{src.split}] doc {i}", doc


def load_seeds(sources: list[SeedSource]) -> tuple[list[Item], dict]:
    """Items in source order, and counts: loaded per source, dropped by reason."""
    items: list[Item] = []
    loaded: Counter = Counter()
    dropped: Counter = Counter()
    seen_ids: set[str] = set()
    for index, src in enumerate(sources):
        name = src.label(index)
        task = _task(src)
        taken = 0
        for i, (where, record) in enumerate(_records(src, task)):
            if src.limit is not None and taken >= src.limit:
                break
            item = _item(src, name, i, where, record, task)
            if item is None:
                dropped["no_reference_answer"] += 1
                continue
            if item.id in seen_ids:
                raise DataError(
                    f"{where}: seed id {item.id!r} appears twice (set `name` per source or a unique "
                    "`id_field`)"
                )
            seen_ids.add(item.id)
            items.append(item)
            taken += 1
        loaded[name] = taken
    return items, {"loaded": sum(loaded.values()), "by_source": dict(loaded), "dropped": dict(dropped)}


def _task(src: SeedSource):
    """The registry task that asks and judges this source's items (its prompt is the task's chat
    question, so answers come in the format `evaluate` reads)."""
    if src.task is None:
        return None
    from infir.eval.registry import get_task

    data_path = src.path if src.type == "task" else None
    return get_task(src.task, data_path=data_path, split=src.split, **src.task_options)


def _item(src: SeedSource, name: str, i: int, where: str, record: dict, task) -> Item | None:
    if task is not None:
        prompt = task.chat_user_message(record)
    else:
        if src.prompt_field not in record:
            raise DataError(f"{where}: no field {src.prompt_field!r} (prompt_field); it has {sorted(record)}")
        prompt = record[src.prompt_field]
    if not isinstance(prompt, str) or not prompt.strip():
        raise DataError(f"{where}: the prompt ({src.prompt_field!r}) is empty or not text")
    reference = None
    if src.answer_field is not None:
        if src.answer_field not in record:
            raise DataError(f"{where}: no field {src.answer_field!r} (answer_field); it has {sorted(record)}")
        reference = reference_answer(record[src.answer_field], src.answer_format)
        if reference is None:
            return None
    elif src.type == "generated":
        reference = str(record["answer"])
    if src.id_field is not None and src.id_field not in record:
        raise DataError(f"{where}: no field {src.id_field!r} (id_field)")
    local_id = str(record[src.id_field]) if src.id_field is not None else str(i)
    item_id = f"{name}:{local_id}"
    label = None
    if src.label_field is not None:
        label = record.get(src.label_field)
    elif src.type == "generated":
        label = record.get("family")
    needs_doc = src.task is not None
    return Item(
        id=item_id,
        prompt=prompt.strip(),
        domain=src.domain,
        source=name,
        seed_id=item_id,
        reference=reference,
        task=src.task,
        doc=record if needs_doc else None,
        label=str(label) if label is not None else None,
    )
