"""Image-text conversations: from generated images, LLaVA-style JSON, or Hugging Face datasets.

A conversation is ChatML `messages` whose string contents hold one `<image>` marker per image, in
the order of `images` (LLaVA's convention). Images are PIL images, file paths or `{"bytes": ...}`
records (Hugging Face's undecoded form); files are opened only when a batch needs them, so a large
JSON dataset costs no memory up front.

LLaVA JSON: a `.json` list (or `.jsonl`) of records
    {"id": "...", "image": "coco/0001.jpg" (or a list), "conversations": [{"from": "human", "value":
     "<image>\\nWhat is ...?"}, {"from": "gpt", "value": "..."}]}
with image paths relative to `image_folder` (default: the JSON file's folder). A record with images
but no `<image>` marker gets them in front of its first user turn, as LLaVA's loader does.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infir.model.vlm import IMAGE_TOKEN
from infir.model.vlm_inputs import LazyImage
from infir.sft.data import BadRecord, LoadReport, keep_good, normalize


@dataclass
class VLConversation:
    images: list[Any]
    messages: list[dict]
    source: str = ""
    meta: dict = field(default_factory=dict)


def content_to_text(content: Any) -> Any:
    """A transformers-style content list ([{"type": "image"}, {"type": "text", ...}]) as a marked string."""
    if not isinstance(content, list):
        return content
    parts = []
    for item in content:
        kind = item.get("type") if isinstance(item, dict) else None
        if kind == "image":
            parts.append(IMAGE_TOKEN)
        elif kind == "text":
            parts.append(item.get("text", ""))
        else:
            raise BadRecord("content", "bad_content_item", repr(item)[:80])
    return "".join(parts)


def with_images(messages: list[dict], n_images: int, where: str) -> list[dict]:
    """Check markers against images; records without markers get them before the first user turn."""
    markers = sum(m["content"].count(IMAGE_TOKEN) for m in messages)
    if markers == 0 and n_images:
        first = next(i for i, m in enumerate(messages) if m["role"] == "user")
        messages = [dict(m) for m in messages]
        messages[first]["content"] = IMAGE_TOKEN * n_images + "\n" + messages[first]["content"]
    elif markers != n_images:
        raise BadRecord(
            where, "image_count_mismatch", f"{markers} {IMAGE_TOKEN} markers for {n_images} images"
        )
    if any(IMAGE_TOKEN in m["content"] for m in messages if m["role"] == "assistant"):
        raise BadRecord(where, "image_in_answer", "assistant turns cannot hold images")
    return messages


def from_record(
    record: dict,
    where: str,
    image_root: Path | None = None,
    image_field: str | None = None,
    system_prompt: str | None = None,
) -> VLConversation:
    """One LLaVA/ShareGPT/messages record with its images as a validated conversation."""
    if not isinstance(record, dict):
        raise BadRecord(where, "not_an_object")
    record = dict(record)
    if "texts" in record and "messages" not in record and "conversations" not in record:
        record["messages"] = _cauldron_messages(record["texts"], where)
    if isinstance(record.get("messages"), list):
        record["messages"] = [
            dict(t, content=content_to_text(t.get("content"))) if isinstance(t, dict) else t
            for t in record["messages"]
        ]
    messages = normalize(record, where, system_prompt)
    fields = [image_field] if image_field else ["image", "images"]
    images: list[Any] = []
    for name in fields:
        value = record.get(name)
        if value is None:
            continue
        images = list(value) if isinstance(value, (list, tuple)) else [value]
        break
    if image_root is not None:
        images = [image_root / p if isinstance(p, str) else p for p in images]
    return VLConversation(images, with_images(messages, len(images), where), where)


def _cauldron_messages(texts: Any, where: str) -> list[dict]:
    # HuggingFaceM4/the_cauldron: "texts": [{"user": ..., "assistant": ...}, ...]
    if not isinstance(texts, list):
        raise BadRecord(where, "no_messages", "`texts` is not a list")
    messages = []
    for turn in texts:
        messages += [
            {"role": "user", "content": turn.get("user")},
            {"role": "assistant", "content": turn.get("assistant")},
        ]
    return messages


def _json_records(path: Path) -> Iterator[tuple[str, Any]]:
    if path.suffix == ".jsonl":
        with path.open(encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if line.strip():
                    try:
                        yield f"{path}:{lineno}", json.loads(line)
                    except json.JSONDecodeError as exc:
                        yield f"{path}:{lineno}", BadRecord(f"{path}:{lineno}", "not_json", exc.msg)
        return
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    except OSError as exc:
        raise FileNotFoundError(f"cannot read LLaVA JSON {path}: {exc}") from None
    if not isinstance(data, list):
        raise ValueError(f"{path}: a LLaVA JSON file holds a list of records, got {type(data).__name__}")
    for i, record in enumerate(data):
        yield f"{path}[{i}]", record


def load_llava_json(
    path: str | Path,
    image_folder: str | Path | None = None,
    limit: int | None = None,
    on_bad_record: str = "fail",
    check_images: bool = True,
    report: LoadReport | None = None,
) -> list[VLConversation]:
    path = Path(path)
    root = Path(image_folder) if image_folder is not None else path.parent
    report = report if report is not None else LoadReport()

    def convert(record, where: str) -> VLConversation:
        conv = from_record(record, where, root)
        missing = [p for p in conv.images if isinstance(p, Path) and not p.is_file()] if check_images else []
        if missing:
            raise BadRecord(where, "missing_image", str(missing[0]))
        return conv

    return keep_good(_json_records(path), convert, on_bad_record, report, limit)


def load_hf_conversations(
    name: str,
    subset: str | None = None,
    split: str = "train",
    limit: int | None = None,
    image_field: str | None = None,
    data_files: Any = None,
    on_bad_record: str = "fail",
    report: LoadReport | None = None,
) -> list[VLConversation]:
    """Records of a Hugging Face dataset (by hub name, or a builder like "parquet" with local data_files).

    Only the text is read up front; each image stays in the memory-mapped dataset as a LazyImage.
    """
    try:
        from datasets import load_dataset
    except ImportError as exc:
        raise ImportError("loading VL data from the hub needs `datasets` (pip install 'infir[hf]')") from exc
    ds = load_dataset(name, subset, split=split, data_files=data_files)
    fields = [image_field] if image_field else [f for f in ("image", "images") if f in ds.column_names]
    if image_field and image_field not in ds.column_names:
        raise ValueError(f"{name}[{split}]: no image field {image_field!r}; columns: {ds.column_names}")
    text_only = ds.remove_columns(fields) if fields else ds
    counts = _image_counts(ds, fields[0]) if fields else None
    report = report if report is not None else LoadReport()

    def convert(indexed, where: str) -> VLConversation:
        i, row = indexed
        conv = from_record(dict(row), where)
        if fields:
            n = counts[i]
            conv = VLConversation(
                [LazyImage(ds, i, fields[0], k) for k in range(n)],
                with_images(conv.messages, n, where),
                where,
            )
        return conv

    rows = ((f"{name}[{split}]#{i}", (i, row)) for i, row in enumerate(text_only))
    return keep_good(rows, convert, on_bad_record, report, limit)


def _image_counts(ds, field: str) -> list[int]:
    """Images per row, read from the Arrow column without decoding any image."""
    import pyarrow as pa
    import pyarrow.compute as pc

    counts: list[int] = []
    for table in ds.select_columns([field]).with_format("arrow").iter(batch_size=4096):
        column = table.column(field)
        if pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
            counts += pc.fill_null(pc.list_value_length(column), 0).to_pylist()
        else:
            counts += [1 if valid else 0 for valid in column.is_valid().to_pylist()]
    return counts


def from_generated(
    image, kinds: list[str] | None, max_turns: int, rng: random.Random, keep_kind: str | None = None
) -> VLConversation | None:
    """A multi-turn conversation about one generated image: several questions share its image tokens.

    Up to `max_turns` questions in random order; one of `keep_kind` (the caption the filter judges),
    when selected, is always among them. The order is random so that no question kind owns the first
    turn: a model must read the question to know what to answer.
    """
    qas = image.of_kinds(kinds)
    if not qas:
        return None
    rng.shuffle(qas)
    qas.sort(key=lambda qa: qa.kind != keep_kind)  # stable: the kept kind first, the rest shuffled
    chosen = qas[:max_turns]
    rng.shuffle(chosen)
    messages = []
    for i, qa in enumerate(chosen):
        messages.append({"role": "user", "content": (IMAGE_TOKEN + "\n" if i == 0 else "") + qa.question})
        messages.append({"role": "assistant", "content": qa.answer})
    return VLConversation(
        [image.image],
        messages,
        f"{image.generator}:{image.key}",
        {"generator": image.generator, "kinds": [qa.kind for qa in chosen]},
    )


def image_as_text(conv: VLConversation, view: str) -> VLConversation:
    """The same conversation with its (single) image replaced by the text view of it."""
    messages = [dict(m, content=m["content"].replace(IMAGE_TOKEN, view)) for m in conv.messages]
    return VLConversation([], messages, conv.source, dict(conv.meta, image_as_text=True))
