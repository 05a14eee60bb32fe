"""Split readers: every record read by exactly one task, in input order, whatever the task count;
a task reads its own part of a file, not the whole; ids and bad-line locations do not depend on
the split."""

from __future__ import annotations

import gzip
import io
import json
import logging
import random
from collections import Counter

import pytest

from infir.curate.config import SourceConfig
from infir.curate.readers import files
from infir.curate.readers.jsonl import iter_lines
from infir.curate.readers.sources import ShardReader, plan_shards


def _read(source: SourceConfig, tasks: int) -> tuple[list, list]:
    shards = plan_shards([source], tasks)
    reader = ShardReader([source], shards)
    docs = [doc for rank in range(len(shards)) for doc in reader.run(rank=rank, world_size=len(shards))]
    return docs, shards


def _words(rng: random.Random, n: int) -> str:
    return " ".join(
        "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9))) for _ in range(n)
    )


def _jsonl_with_trouble(path) -> tuple[list[str], dict[int, str]]:
    """Lines of very different lengths (some far longer than a task's range), CRLF endings,
    empty lines, bad lines, records without an id, no newline after the last line.
    Returns the expected ids of good records in order and {line number: reason} of the bad ones."""
    rng = random.Random(7)
    lines: list[bytes] = []
    ids: list[str] = []
    bad: dict[int, str] = {}
    for i in range(62):  # the last (61) is a record, written without a newline
        n = i + 1  # this line's number
        if i % 11 == 5:
            lines.append(b"{not json\n")
            bad[n] = "malformed_json"
        elif i % 13 == 7:
            lines.append(b"\r\n" if i % 2 else b"\n")
            bad[n] = "empty_line"
        elif i == 21:
            lines.append(b'{"id": "bad-utf8", "text": "\xff\xfe"}\n')
            bad[n] = "invalid_utf8"
        elif i == 34:
            lines.append(json.dumps({"id": "no-text", "body": "x"}).encode() + b"\n")
            bad[n] = "missing_text"
        else:
            record = {"text": _words(rng, rng.choice([3, 40, 900]))}
            if i % 4:
                record["id"] = f"d{i}"
            ending = b"\r\n" if i % 3 == 0 else b"\n"
            lines.append(json.dumps(record).encode() + ending)
            ids.append(record.get("id", f"@{sum(map(len, lines[:-1]))}"))
    lines[-1] = lines[-1].rstrip(b"\r\n")
    data = b"".join(lines)
    path.write_bytes(data)
    ids = [i if not i.startswith("@") else f"{path}:byte{i[1:]}" for i in ids]
    return ids, bad


@pytest.mark.parametrize("tasks", [1, 2, 3, 5, 8, 13])
def test_jsonl_every_line_read_once_in_order(tmp_path, tasks):
    path = tmp_path / "in.jsonl"
    ids, bad = _jsonl_with_trouble(path)
    docs, shards = _read(SourceConfig(type="jsonl", paths=[str(path)]), tasks)
    assert len(shards) == tasks and all(s.end is not None for s in shards)  # byte ranges, not whole-file
    assert [d.id for d in docs if not d.metadata.get("_bad")] == ids
    assert {d.metadata["_where"]: d.metadata["_bad"] for d in docs if d.metadata.get("_bad")} == {
        f"{path}:{n}": reason for n, reason in bad.items()
    }
    assert all("\r" not in d.text for d in docs if not d.metadata.get("_bad"))


def test_every_split_point_keeps_every_line_once(tmp_path):
    path = tmp_path / "small.jsonl"
    path.write_bytes(b'{"a": 1}\r\n\n{"b": 22}\n' + b'{"c": "' + b"x" * 50 + b'"}\n{"d": 4}')
    data = path.read_bytes()
    expected = [(0, b'{"a": 1}\r\n'), (10, b"\n"), (11, b'{"b": 22}\n'), (21, data[21:81]), (81, b'{"d": 4}')]
    assert list(iter_lines(str(path))) == expected
    for cut in range(len(data) + 1):
        for cut2 in range(cut, len(data) + 1, 7):
            parts = [list(iter_lines(str(path), a, b)) for a, b in ((0, cut), (cut, cut2), (cut2, len(data)))]
            assert parts[0] + parts[1] + parts[2] == expected, (cut, cut2)


class _CountingFile(io.FileIO):
    """A file that counts the bytes it hands out of the operating system."""

    def __init__(self, path, counter: Counter):
        super().__init__(path, "rb")
        self.counter, self.key = counter, str(path)

    def readinto(self, buffer):
        n = super().readinto(buffer)
        self.counter[self.key] += n or 0
        return n

    def read(self, size=-1):
        data = super().read(size)
        self.counter[self.key] += len(data)
        return data

    def readall(self):
        data = super().readall()
        self.counter[self.key] += len(data)
        return data


@pytest.fixture
def counted_reads(monkeypatch):
    """Per-read-call byte counts of plain-file opens made by the readers, one Counter per open."""
    opened: list[Counter] = []
    real = files.open_binary

    def counting(path: str, decompress: bool = True):
        if decompress and files.is_compressed(path):
            return real(path, decompress)
        counter = Counter()
        opened.append(counter)
        return io.BufferedReader(_CountingFile(path, counter))

    monkeypatch.setattr(files, "open_binary", counting)
    return opened


def test_jsonl_task_reads_its_range_not_the_file(tmp_path, counted_reads):
    path = tmp_path / "big.jsonl"
    rng = random.Random(3)
    with path.open("w") as f:
        for i in range(3000):
            f.write(json.dumps({"id": f"d{i}", "text": _words(rng, 30)}) + "\n")
    size, longest = path.stat().st_size, max(map(len, path.read_bytes().splitlines()))
    source = SourceConfig(type="jsonl", paths=[str(path)])
    shards = plan_shards([source], 4)
    counted_reads.clear()  # planning reads the head of the file once, to fail early on unreadable input
    reader = ShardReader([source], shards)
    per_task = []
    for rank in range(4):
        before = len(counted_reads)
        n_docs = sum(1 for _ in reader.run(rank=rank, world_size=4))
        per_task.append(sum(sum(c.values()) for c in counted_reads[before:]))
        assert 600 < n_docs < 900
    slack = longest + 2 * io.DEFAULT_BUFFER_SIZE  # the line crossing the end, one read-ahead buffer
    assert all(read <= size / 4 + slack for read in per_task), (per_task, size)
    assert sum(per_task) <= size + 4 * slack


def test_bad_line_in_a_later_task_has_its_file_line_number(tmp_path, counted_reads):
    path = tmp_path / "late.jsonl"
    lines = [json.dumps({"id": f"d{i}", "text": "some words here"}) for i in range(200)]
    lines[170] = "{broken"
    path.write_text("\n".join(lines) + "\n")
    docs, shards = _read(SourceConfig(type="jsonl", paths=[str(path)]), 4)
    assert [d.metadata["_where"] for d in docs if d.metadata.get("_bad")] == [f"{path}:171"]
    assert [d.id for d in docs if not d.metadata.get("_bad")] == [f"d{i}" for i in range(200) if i != 170]


def test_ids_without_an_id_field_do_not_depend_on_the_split(tmp_path):
    path = tmp_path / "noid.jsonl"
    path.write_text("".join(json.dumps({"text": f"document {i} " * (i % 7 + 1)}) + "\n" for i in range(50)))
    one, _ = _read(SourceConfig(type="jsonl", paths=[str(path)]), 1)
    for tasks in (2, 6):
        many, _ = _read(SourceConfig(type="jsonl", paths=[str(path)]), tasks)
        assert [(d.id, d.text) for d in many] == [(d.id, d.text) for d in one]
    assert len({d.id for d in one}) == 50


def test_compressed_file_is_one_task_and_files_share_tasks_by_size(tmp_path):
    big, small, packed = tmp_path / "a.jsonl", tmp_path / "b.jsonl", tmp_path / "c.jsonl.gz"
    big.write_text("".join(json.dumps({"id": f"a{i}", "text": "x " * 50}) + "\n" for i in range(300)))
    small.write_text("".join(json.dumps({"id": f"b{i}", "text": "y"}) + "\n" for i in range(10)))
    with gzip.open(packed, "wt") as f:
        f.write("".join(json.dumps({"id": f"c{i}", "text": "z"}) + "\n" for i in range(40)))
    source = SourceConfig(type="jsonl", paths=[str(big), str(small), str(packed)])
    docs, shards = _read(source, 6)
    by_file = Counter(s.path for s in shards)
    assert by_file[str(packed)] == 1 and by_file[str(small)] == 1 and by_file[str(big)] >= 5
    assert [d.id for d in docs] == [f"a{i}" for i in range(300)] + [f"b{i}" for i in range(10)] + [
        f"c{i}" for i in range(40)
    ]


def test_limit_reads_one_task_per_file_and_stops(tmp_path):
    path = tmp_path / "l.jsonl"
    path.write_text("".join(json.dumps({"id": f"d{i}", "text": "t"}) + "\n" for i in range(100)))
    docs, shards = _read(SourceConfig(type="jsonl", paths=[str(path)], limit=30), 4)
    assert len(shards) == 1 and [d.id for d in docs] == [f"d{i}" for i in range(30)]


def _parquet(path, n_rows: int, row_group_size: int, with_ids: bool = True) -> list[dict]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = random.Random(5)
    rows = [
        {"id": f"p{i}" if with_ids else None, "text": _words(rng, 60), "lang": "en"} for i in range(n_rows)
    ]
    pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=row_group_size, compression="none")
    return rows


@pytest.mark.parametrize("tasks", [1, 2, 3, 4, 7, 12])
def test_parquet_every_row_once_by_row_groups(tmp_path, tasks):
    path = tmp_path / "t.parquet"
    rows = _parquet(path, 70, row_group_size=10)  # 7 row groups
    docs, shards = _read(SourceConfig(type="parquet", paths=[str(path)]), tasks)
    assert len(shards) == min(tasks, 7)
    assert [(s.start, s.end) for s in shards][0][0] == 0 and shards[-1].end == 7
    assert all(a.end == b.start for a, b in zip(shards, shards[1:]))
    assert [d.id for d in docs] == [r["id"] for r in rows]
    assert all(d.metadata["lang"] == "en" for d in docs)


def test_parquet_with_a_limit_is_one_task_that_stops(tmp_path):
    path = tmp_path / "l.parquet"
    rows = _parquet(path, 50, row_group_size=10)
    docs, shards = _read(SourceConfig(type="parquet", paths=[str(path)], limit=23), 4)
    assert len(shards) == 1 and [d.id for d in docs] == [r["id"] for r in rows[:23]]


def test_truncated_compressed_file_fails_with_its_path(tmp_path):
    from infir.curate.readers.sources import CurateInputError

    path = tmp_path / "cut.jsonl.gz"
    whole = gzip.compress(
        b"".join(json.dumps({"id": f"d{i}", "text": "t " * 50}).encode() + b"\n" for i in range(2000))
    )
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(CurateInputError, match="cut.jsonl.gz"):
        _read(SourceConfig(type="jsonl", paths=[str(path)]), 2)


def test_parquet_ids_without_id_column_are_file_rows(tmp_path):
    path = tmp_path / "n.parquet"
    _parquet(path, 30, row_group_size=4, with_ids=False)
    one, _ = _read(SourceConfig(type="parquet", paths=[str(path)]), 1)
    five, _ = _read(SourceConfig(type="parquet", paths=[str(path)]), 5)
    assert [d.id for d in one] == [d.id for d in five] == [f"{path}:row{i}" for i in range(30)]


def test_parquet_task_reads_its_row_groups_not_the_file(tmp_path, counted_reads):
    path = tmp_path / "big.parquet"
    _parquet(path, 800, row_group_size=100)  # 8 row groups of incompressible text
    size = path.stat().st_size
    source = SourceConfig(type="parquet", paths=[str(path)])
    shards = plan_shards([source], 4)
    counted_reads.clear()
    reader = ShardReader([source], shards)
    for rank in range(4):
        before = len(counted_reads)
        assert sum(1 for _ in reader.run(rank=rank, world_size=4)) == 200
        read = sum(sum(c.values()) for c in counted_reads[before:])
        # its two of eight row groups, and the file's tail that pyarrow reads to find the footer
        own = size * (shards[rank].end - shards[rank].start) / 8
        assert read <= own + (64 << 10) + 2 * io.DEFAULT_BUFFER_SIZE, (rank, read, size)
        assert read < size / 2


def _hf_folder(root, kind: str, n_files: int, per_file: int, with_ids: bool = True) -> list[dict]:
    import datasets  # in the dev extra: these tests run in CI, never skip

    root.mkdir()
    rows = [
        {"id": f"h{i}" if with_ids else None, "text": f"record {i} about lakes"}
        for i in range(n_files * per_file)
    ]
    for k in range(n_files):
        part = rows[k * per_file : (k + 1) * per_file]
        name = f"train-{k:05d}-of-{n_files:05d}"
        if kind == "parquet":
            datasets.Dataset.from_list(part).to_parquet(str(root / f"{name}.parquet"))
        else:
            (root / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in part))
    return rows


@pytest.mark.parametrize("kind", ["parquet", "jsonl"])
def test_hf_dataset_split_by_its_files(tmp_path, kind, caplog):
    rows = _hf_folder(tmp_path / "ds", kind, n_files=4, per_file=9)
    source = SourceConfig(type="hf", name=str(tmp_path / "ds"), split="train")
    for tasks in (1, 2, 3, 4):
        docs, shards = _read(source, tasks)
        assert len(shards) == tasks and shards[-1].end == 4 and all(s.units == 4 for s in shards)
        assert [d.id for d in docs] == [r["id"] for r in rows]
    with caplog.at_level(logging.WARNING, logger="infir.curate"):
        docs, shards = _read(source, 10)
    assert len(shards) == 4 and [d.id for d in docs] == [r["id"] for r in rows]
    assert "has 4 file(s): 4 task(s) read it, not 10" in caplog.text


def test_hf_ids_without_id_field_name_file_and_row(tmp_path):
    _hf_folder(tmp_path / "ds", "parquet", n_files=3, per_file=5, with_ids=False)
    source = SourceConfig(type="hf", name=str(tmp_path / "ds"), split="train")
    one, _ = _read(source, 1)
    three, _ = _read(source, 3)
    assert (
        [d.id for d in one]
        == [d.id for d in three]
        == [f"{tmp_path / 'ds'}:file{k}:{r}" for k in range(3) for r in range(5)]
    )


def test_hf_task_reads_only_its_files(tmp_path, monkeypatch):
    """A task reads its own files; of the others, `load_dataset` opens only the first, to infer
    the features (a JSON dataset's schema)."""
    _hf_folder(tmp_path / "ds", "jsonl", n_files=4, per_file=3)
    source = SourceConfig(type="hf", name=str(tmp_path / "ds"), split="train")
    shards = plan_shards([source], 2)
    opened = []
    real_open = open

    def spy(file, *args, **kwargs):
        if str(file).endswith(".jsonl"):
            opened.append(str(file).rsplit("/", 1)[-1])
        return real_open(file, *args, **kwargs)

    import builtins

    monkeypatch.setattr(builtins, "open", spy)
    docs = list(ShardReader([source], shards).run(rank=1, world_size=2))
    assert [d.id for d in docs] == [f"h{i}" for i in range(6, 12)]
    assert {"train-00002-of-00004.jsonl", "train-00003-of-00004.jsonl"} <= set(opened)
    assert "train-00001-of-00004.jsonl" not in opened


def test_hf_saved_dataset_split_by_rows(tmp_path):
    import datasets  # in the dev extra: these tests run in CI, never skip

    datasets.Dataset.from_list([{"text": f"t{i}"} for i in range(11)]).save_to_disk(str(tmp_path / "saved"))
    source = SourceConfig(type="hf", name=str(tmp_path / "saved"))
    one, _ = _read(source, 1)
    four, shards = _read(source, 4)
    assert len(shards) == 4
    assert [d.id for d in four] == [d.id for d in one] == [f"{tmp_path / 'saved'}:row{i}" for i in range(11)]


def test_curate_keeps_the_same_documents_however_the_file_is_split(tmp_path):
    """Dedup keeps the first copy in input order; byte-range shards keep input order, so the
    kept set (which copy survives included) does not depend on the number of tasks."""
    from infir.curate.config import CurateConfig
    from infir.curate.pipeline import run_curate
    from infir.data.builtin import iter_builtin

    docs = list(iter_builtin("python_docs", max_docs=30))
    lines = [json.dumps({"id": d["id"], "text": d["text"]}) for d in docs]
    for k in (3, 11, 25):  # a near copy of an earlier document, later in the file
        lines.append(json.dumps({"id": f"copy-of-{k}", "text": docs[k]["text"] + "\nOne more closing line."}))
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n")

    def kept(tasks: int) -> set[str]:
        cfg = CurateConfig(
            sources=[SourceConfig(type="jsonl", paths=[str(tmp_path / "in.jsonl")])], workers=2, tasks=tasks
        )
        for section in (cfg.langid, cfg.recall, cfg.quality, cfg.decontam):
            section.enabled = False
        out = tmp_path / f"out-{tasks}"
        run_curate(cfg, out)
        return {
            json.loads(line)["id"] for p in (out / "kept").glob("*.jsonl.gz") for line in gzip.open(p, "rt")
        }

    one, four = kept(1), kept(4)
    assert one == four
    assert not {"copy-of-3", "copy-of-11", "copy-of-25"} & one
    assert {docs[k]["id"] for k in (3, 11, 25)} <= one  # the originals, earlier in the file, are kept
