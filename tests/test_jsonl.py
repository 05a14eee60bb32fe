import gzip

import pytest

from infir.jsonl import JsonlError, parse_object, read_objects, scan, write_jsonl


def test_scan_numbers_lines_skips_blanks_and_names_bad_lines(tmp_path):
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b'{"a": 1}\n\n   \n[1, 2]\n{oops\n\xff\xfe{"b": 2}\n{"c": 3}\r\n')
    rows = list(scan(path))
    assert [lineno for lineno, _ in rows] == [1, 4, 5, 6, 7]
    assert rows[0][1] == {"a": 1} and rows[4][1] == {"c": 3}  # lines after bad ones still come
    errors = [value for _, value in rows[1:4]]
    assert all(isinstance(e, JsonlError) for e in errors)
    assert [e.reason for e in errors] == ["not_an_object", "not_json", "invalid_utf8"]
    assert [e.where for e in errors] == [f"{path}:4", f"{path}:5", f"{path}:6"]
    assert str(errors[0]) == f"{path}:4: expected a JSON object, got list"
    assert str(errors[1]).startswith(f"{path}:5: not valid JSON (")


def test_read_objects_reads_gzip_and_raises_at_the_first_bad_line(tmp_path):
    good = tmp_path / "good.jsonl.gz"
    with gzip.open(good, "wt", encoding="utf-8") as f:
        f.write('{"x": "é"}\n\n{"x": 2}\n')
    assert list(read_objects(good)) == [(1, {"x": "é"}), (3, {"x": 2})]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"x": 1}\n"just a string"\n{"x": 3}\n')
    with pytest.raises(JsonlError, match=rf"{bad}:2: expected a JSON object, got str"):
        list(read_objects(bad))


def test_corrupt_gzip_and_missing_file(tmp_path):
    truncated = tmp_path / "cut.jsonl.gz"
    whole = gzip.compress(b"".join(b'{"x": %d}\n' % i for i in range(1000)))
    truncated.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(JsonlError, match=rf"{truncated}: unreadable input"):
        list(scan(truncated))
    with pytest.raises(FileNotFoundError):
        list(scan(tmp_path / "absent.jsonl"))


def test_parse_object_takes_bytes_or_text():
    assert parse_object(b'{"k": [1]}', "f:1") == {"k": [1]}
    assert parse_object('{"k": null}', "f:2") == {"k": None}
    with pytest.raises(JsonlError, match="f:3: not UTF-8"):
        parse_object(b'{"k": "\xc3"}', "f:3")


def test_write_jsonl_round_trips_and_replaces_atomically(tmp_path):
    path = tmp_path / "out" / "rows.jsonl"
    path.parent.mkdir()
    path.write_text("old\n")
    rows = [{"text": "ünï"}, {"path": tmp_path}]
    assert write_jsonl(path, rows, default=str) == 2
    assert list(read_objects(path)) == [(1, {"text": "ünï"}), (2, {"path": str(tmp_path)})]
    assert "ünï" in path.read_text(encoding="utf-8")  # not ASCII-escaped
    assert sorted(p.name for p in path.parent.iterdir()) == ["rows.jsonl"]  # no temporary left behind
    with pytest.raises(TypeError):
        write_jsonl(path, [{"path": tmp_path}])  # no `default`: JSON has no type for a Path
    assert list(read_objects(path))[1][1] == {"path": str(tmp_path)}  # the failed write left the old file
