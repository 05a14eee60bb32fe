"""Seed loading: fields, reference answers, errors naming file and record, registry-task seeds."""

from __future__ import annotations

import json

import pytest

from infir.eval.loading import DataError
from infir.synth.config import SeedSource
from infir.synth.seeds import load_seeds, reference_answer

from .conftest import word_problems, write_jsonl


@pytest.mark.parametrize(
    "raw, fmt, expected",
    [
        ("steps\n#### 1,234", "gsm8k", "1234"),
        ("no final line", "gsm8k", None),
        ("so $\\boxed{\\frac{1}{2}}$", "boxed", "\\frac{1}{2}"),
        (" 42 ", "plain", "42"),
        (None, "plain", None),
    ],
)
def test_reference_answer(raw, fmt, expected):
    assert reference_answer(raw, fmt) == expected


def test_jsonl_seeds_with_gsm8k_answers(tmp_path):
    records = word_problems(5) + [{"question": "No answer line?", "answer": "just text"}]
    path = write_jsonl(tmp_path / "s.jsonl", records)
    items, counts = load_seeds(
        [
            SeedSource(
                type="jsonl", path=str(path), name="wp", answer_field="answer", answer_format="gsm8k", limit=5
            )
        ]
    )
    assert [i.id for i in items] == [f"wp:{k}" for k in range(5)]
    assert items[0].reference == str((3 + 5) * 2) and items[0].seed_id == items[0].id
    assert counts == {"loaded": 5, "by_source": {"wp": 5}, "dropped": {}}
    items, counts = load_seeds(
        [SeedSource(type="jsonl", path=str(path), answer_field="answer", answer_format="gsm8k")]
    )
    assert len(items) == 5 and counts["dropped"] == {"no_reference_answer": 1}


def test_errors_name_the_file_and_record(tmp_path):
    path = write_jsonl(tmp_path / "s.jsonl", [{"question": "ok"}, {"prompt": "wrong field"}])
    with pytest.raises(DataError, match=r"s\.jsonl record 2: no field 'question'"):
        load_seeds([SeedSource(type="jsonl", path=str(path))])
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "fine"}\n{not json\n')
    with pytest.raises(DataError, match=r"bad\.jsonl:2"):
        load_seeds([SeedSource(type="jsonl", path=str(bad))])
    with pytest.raises(DataError, match="does not exist"):
        load_seeds([SeedSource(type="jsonl", path=str(tmp_path / "absent.jsonl"))])


def test_duplicate_ids_across_sources_fail(tmp_path):
    path = write_jsonl(tmp_path / "s.jsonl", word_problems(2))
    src = SeedSource(type="jsonl", path=str(path), name="same")
    with pytest.raises(DataError, match="appears twice"):
        load_seeds([src, src])


def test_generated_seeds_carry_answers_and_family_labels():
    items, counts = load_seeds(
        [SeedSource(type="generated", families=["chain_sum", "simple_equations"], per_family=3)]
    )
    assert counts["loaded"] == 6 and {i.label for i in items} == {"chain_sum", "simple_equations"}
    assert all(i.reference is not None and i.task is None for i in items)


def test_task_on_a_jsonl_source_keeps_the_record_as_the_document(tmp_path):
    doc = {
        "task_id": 7,
        "text": "Write add(a, b).",
        "code": "def add(a, b):\n    return a + b",
        "test_list": ["assert add(1, 2) == 3"],
    }
    path = write_jsonl(tmp_path / "code.jsonl", [doc])
    items, _ = load_seeds(
        [SeedSource(type="jsonl", path=str(path), task="mbpp", domain="code", id_field="task_id")]
    )
    assert items[0].id == "jsonl0:7" and items[0].doc == doc and items[0].task == "mbpp"
    assert "assert add(1, 2) == 3" in items[0].prompt and "```python" in items[0].prompt


def test_gsm8k_train_from_the_registry_task(shared):
    items, counts = load_seeds(
        [
            SeedSource(
                type="task", task="gsm8k", path=str(shared / "benchmarks" / "gsm8k"), split="train", limit=20
            )
        ]
    )
    first = json.loads((shared / "benchmarks" / "gsm8k" / "train.jsonl").open().readline())
    assert counts["loaded"] == 20 and items[0].doc == first and items[0].task == "gsm8k"
    assert items[0].prompt.startswith(first["question"].strip())


def test_hf_seeds_go_through_the_eval_loader(monkeypatch):
    calls = []

    def fake_load_hf(name, config, split):
        calls.append((name, config, split))
        return word_problems(3)

    monkeypatch.setattr("infir.eval.loading.load_hf", fake_load_hf)
    items, counts = load_seeds(
        [
            SeedSource(
                type="hf",
                name="openai/gsm8k",
                subset="main",
                split="train",
                answer_field="answer",
                answer_format="gsm8k",
            )
        ]
    )
    assert calls == [("openai/gsm8k", "main", "train")]
    assert counts["by_source"] == {"openai/gsm8k": 3} and items[0].id == "openai/gsm8k:0"
