"""Conversations for SFT: loading, ShareGPT conversion and validation.

A bad record (not JSON, unknown role, empty content, no assistant turn) fails with its file and
record number, or, when the recipe says `on_bad_record: drop`, is dropped and counted by reason.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Callable, Iterable
from typing import Iterator, TypeVar

from infir.jsonl import JsonlError, scan
from infir.sft.config import ConversationSource

T = TypeVar("T")

ROLES = {"system", "user", "assistant"}
SHAREGPT_ROLES = {
    "system": "system",
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "chatgpt": "assistant",
    "bing": "assistant",
    "bard": "assistant",
}


class BadRecord(ValueError):
    def __init__(self, where: str, reason: str, detail: str = ""):
        super().__init__(f"{where}: {reason}{': ' + detail if detail else ''}")
        self.where, self.reason = where, reason


@dataclass
class LoadReport:
    kept: int = 0
    dropped: Counter = field(default_factory=Counter)

    def to_dict(self) -> dict:
        return {"kept": self.kept, "dropped": dict(self.dropped)}


def normalize(record, where: str, system_prompt: str | None = None) -> list[dict]:
    """Return validated `messages` for one record, or raise BadRecord naming `where`."""
    if not isinstance(record, dict):
        raise BadRecord(where, "not_an_object")
    if "messages" in record:
        raw = record["messages"]
        convert = False
    elif "conversations" in record:
        raw = record["conversations"]
        convert = True
    else:
        raise BadRecord(where, "no_messages", "expected a `messages` or `conversations` list")
    if not isinstance(raw, list) or not raw:
        raise BadRecord(where, "no_messages", "empty or not a list")
    messages = []
    for i, turn in enumerate(raw):
        if not isinstance(turn, dict):
            raise BadRecord(where, "bad_turn", f"turn {i} is not an object")
        if convert:
            role = SHAREGPT_ROLES.get(str(turn.get("from", "")).lower())
            content = turn.get("value")
            if role is None:
                raise BadRecord(where, "unknown_role", f"turn {i} has role {turn.get('from')!r}")
        else:
            role, content = turn.get("role"), turn.get("content")
            if role not in ROLES:
                raise BadRecord(where, "unknown_role", f"turn {i} has role {role!r}")
        if not isinstance(content, str) or not content.strip():
            raise BadRecord(where, "empty_content", f"turn {i} ({role})")
        messages.append({"role": role, "content": content})
    if not any(m["role"] == "assistant" for m in messages):
        raise BadRecord(where, "no_assistant_turn")
    if system_prompt and messages[0]["role"] != "system":
        messages.insert(0, {"role": "system", "content": system_prompt})
    return messages


def _jsonl_records(path: Path) -> Iterator[tuple[str, object]]:
    try:
        for lineno, record in scan(path):
            where = f"{path}:{lineno}"
            if isinstance(record, JsonlError):
                record = BadRecord(where, record.reason, record.detail)
            yield where, record
    except OSError as exc:  # only opening raises it: `scan` reports a bad stream as a JsonlError
        raise FileNotFoundError(f"cannot read conversations file {path}: {exc}") from exc


def _source_records(src: ConversationSource, run_dir: Path | None) -> Iterator[tuple[str, object]]:
    if src.type == "jsonl":
        yield from _jsonl_records(Path(src.path))
    elif src.type == "synth":
        if run_dir is None:
            raise ValueError("a synth source needs the run directory")
        for path in sorted((run_dir / "synth").glob("*.jsonl*")):
            yield from _jsonl_records(path)
    elif src.type == "hf":
        from datasets import load_dataset

        ds = load_dataset(src.name, src.subset, split=src.split, streaming=True)
        for i, row in enumerate(ds):
            yield f"{src.name}[{src.split}]#{i}", row
    elif src.type == "generated":
        from infir.data import reasoning

        for family in src.families:
            for i, p in enumerate(reasoning.generate(family, src.per_family, seed=src.seed, split="train")):
                yield (
                    f"generated:{family}#{i}",
                    {
                        "messages": [
                            {"role": "user", "content": p.question},
                            {"role": "assistant", "content": p.solution},
                        ]
                    },
                )


def load_conversations(
    sources: list[ConversationSource], on_bad_record: str = "fail", run_dir: Path | None = None
) -> tuple[list[list[dict]], LoadReport]:
    report = LoadReport()
    return list(iter_conversations(sources, on_bad_record, run_dir, report)), report


def iter_conversations(
    sources: list[ConversationSource], on_bad_record: str, run_dir: Path | None, report: LoadReport
) -> Iterator[list[dict]]:
    """The conversations of every source in order, one at a time (`report` counts them as they pass)."""
    for src in sources:
        yield from iter_good(
            _source_records(src, run_dir),
            lambda record, where, src=src: normalize(record, where, src.system_prompt),
            on_bad_record,
            report,
            src.limit,
        )


def keep_good(
    records: Iterable[tuple[str, object]],
    convert: Callable[[object, str], T],
    on_bad_record: str,
    report: LoadReport,
    limit: int | None = None,
) -> list[T]:
    return list(iter_good(records, convert, on_bad_record, report, limit))


def iter_good(
    records: Iterable[tuple[str, object]],
    convert: Callable[[object, str], T],
    on_bad_record: str,
    report: LoadReport,
    limit: int | None = None,
) -> Iterator[T]:
    """`convert(record, where)` of each (where, record) pair, up to `limit` good ones. A bad record (a
    `BadRecord` from the reader or from `convert`) stops the load, or with on_bad_record="drop" is
    counted under its reason in `report`."""
    good = 0
    for where, record in records:
        if limit is not None and good >= limit:
            break
        try:
            if isinstance(record, BadRecord):
                raise record
            item = convert(record, where)
        except BadRecord as bad:
            if on_bad_record == "fail":
                raise
            report.dropped[bad.reason] += 1
            continue
        good += 1
        report.kept += 1
        yield item
