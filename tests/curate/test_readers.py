"""Inputs other than JSONL: Parquet, WARC (real Common Crawl files), Hugging Face datasets on disk."""

from __future__ import annotations

import pytest

from infir.curate.config import SourceConfig
from infir.curate.readers.sources import CurateInputError, ShardReader, plan_shards

ROWS = [
    {
        "id": f"r{i}",
        "text": f"Document number {i} talks about rivers and mountains.",
        "url": f"https://x.org/{i}",
        "lang": "en",
    }
    for i in range(7)
]


def _read(source: SourceConfig, tasks: int = 2) -> list:
    shards = plan_shards([source], tasks)
    reader = ShardReader([source], shards)
    return [doc for rank in range(len(shards)) for doc in reader.run(rank=rank, world_size=len(shards))]


def test_parquet_rows_split_over_tasks_and_bad_rows_kept(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = ROWS + [{"id": "no-text", "text": None, "url": "https://x.org/n", "lang": "en"}]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "part.parquet", row_group_size=3)
    docs = _read(SourceConfig(type="parquet", paths=[str(tmp_path / "*.parquet")]), tasks=3)
    assert sorted(d.id for d in docs if not d.metadata.get("_bad")) == sorted(r["id"] for r in ROWS)
    assert all(d.metadata["url"].startswith("https://x.org/") for d in docs if not d.metadata.get("_bad"))
    assert [d.metadata["_bad"] for d in docs if d.metadata.get("_bad")] == ["missing_text"]
    assert {d.metadata["lang"] for d in docs if not d.metadata.get("_bad")} == {"en"}  # other columns kept


def test_unreadable_parquet_fails_with_its_path(tmp_path):
    (tmp_path / "bad.parquet").write_bytes(b"not a parquet file")
    with pytest.raises(CurateInputError, match="bad.parquet"):
        plan_shards([SourceConfig(type="parquet", paths=[str(tmp_path / "bad.parquet")])], 2)


@pytest.mark.shared
def test_warc_responses_become_extracted_documents(shared):
    warcs = sorted((shared / "corpus/web-samples").glob("*.warc.gz"))
    assert len(warcs) == 2
    docs = _read(SourceConfig(type="warc", paths=[str(p) for p in warcs]), tasks=4)
    assert len(docs) >= 20 and len({d.id for d in docs}) == len(docs)  # one per HTML response, ids unique
    assert all(d.metadata["url"].startswith("http") for d in docs)
    extracted = [d for d in docs if d.text.strip()]
    assert len(extracted) >= len(docs) // 2
    assert all("<html" not in d.text.lower() and "<div" not in d.text.lower() for d in extracted)


def test_dataset_saved_to_disk_and_parquet_folder(tmp_path):
    import datasets

    datasets.Dataset.from_list(ROWS).save_to_disk(str(tmp_path / "saved"))
    docs = _read(SourceConfig(type="hf", name=str(tmp_path / "saved")), tasks=2)
    assert sorted(d.id for d in docs) == sorted(r["id"] for r in ROWS)
    assert {d.text for d in docs} == {r["text"] for r in ROWS}

    folder = tmp_path / "folder"
    folder.mkdir()
    datasets.Dataset.from_list(ROWS).to_parquet(str(folder / "train-00000-of-00001.parquet"))
    docs = _read(SourceConfig(type="hf", name=str(folder), split="train"), tasks=2)
    assert sorted(d.id for d in docs) == sorted(r["id"] for r in ROWS)


def test_missing_dataset_fails_with_its_name(tmp_path):
    with pytest.raises(CurateInputError, match="no-such-dataset"):
        _read(SourceConfig(type="hf", name=str(tmp_path / "no-such-dataset")), tasks=1)
