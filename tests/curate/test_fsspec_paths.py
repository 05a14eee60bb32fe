"""Outputs and the work folder on fsspec filesystems (datatrove DataFolders, `WorkFolder`)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import fsspec

from infir.curate.config import CurateConfig, SourceConfig
from infir.curate.pipeline import run_curate


def _corpus(path: Path) -> None:
    from infir.data.builtin import iter_builtin

    docs = list(iter_builtin("python_docs", max_docs=30)) + list(
        iter_builtin("reasoning_gym", docs_per_family=3)
    )
    docs.insert(4, {**docs[0], "id": "copy"})  # an exact duplicate, removed by the dedup stages
    path.write_text(
        "".join(json.dumps({"id": d["id"], "text": d["text"], "url": d["url"]}) + "\n" for d in docs)
    )


def _cfg(path: Path, workers: int, **kw) -> CurateConfig:
    cfg = CurateConfig(
        sources=[SourceConfig(type="jsonl", paths=[str(path)])], workers=workers, tasks=2, **kw
    )
    for section in (cfg.recall, cfg.quality, cfg.decontam):
        section.enabled = False
    return cfg


def _kept_ids(fs, folder: str) -> list[str]:
    ids = []
    for name in fs.glob(f"{folder}/kept/*.jsonl.gz"):
        with fs.open(name, "rb") as f:
            ids += [json.loads(line)["id"] for line in gzip.decompress(f.read()).splitlines()]
    return sorted(ids)


def test_output_on_a_memory_filesystem_equals_a_local_run(tmp_path):
    """memory:// is no local folder: every output goes through fsspec. One worker, so the tasks run
    in this process and see the same in-memory filesystem."""
    corpus = tmp_path / "in.jsonl"
    _corpus(corpus)
    local = run_curate(_cfg(corpus, 1), tmp_path / "local")
    url = "memory://infir-curate-test/out"
    remote = run_curate(_cfg(corpus, 1, work_dir=str(tmp_path / "work")), url)
    fs = fsspec.filesystem("memory")
    try:
        assert remote["totals"] == {
            **local["totals"],
            "seconds": remote["totals"]["seconds"],
            "stage_seconds": remote["totals"]["stage_seconds"],
        }
        assert local["select"]["dedup"]["removed"] >= 1
        kept = _kept_ids(fs, "/infir-curate-test/out")
        assert kept and kept == _kept_ids(fsspec.filesystem("file"), str(tmp_path / "local"))
        assert "copy" not in kept
        assert json.loads(fs.cat("/infir-curate-test/out/summary.json"))["totals"]["docs_kept"] == len(kept)
        assert fs.glob("/infir-curate-test/out/removed/dedup/*.jsonl.gz")
        assert not (tmp_path / "work" / "kept").exists() and (tmp_path / "work" / "fingerprint").exists()
    finally:
        fs.rm("/infir-curate-test", recursive=True)


def test_file_urls_for_output_and_work_with_parallel_workers(tmp_path):
    corpus = tmp_path / "in.jsonl"
    _corpus(corpus)
    local = run_curate(_cfg(corpus, 2), tmp_path / "local")
    remote = run_curate(_cfg(corpus, 2, work_dir=f"file://{tmp_path}/work"), f"file://{tmp_path}/out")
    assert remote["totals"]["docs_kept"] == local["totals"]["docs_kept"]
    files = fsspec.filesystem("file")
    assert _kept_ids(files, str(tmp_path / "out")) == _kept_ids(files, str(tmp_path / "local"))
    assert (tmp_path / "work" / "buckets").is_dir() and not (tmp_path / "out" / "_work").exists()


def test_work_and_output_on_a_memory_filesystem_equal_a_local_run(tmp_path):
    """No local folder at all: the work folder defaults to `<output>/_work` on the same fsspec
    filesystem, and tasks move its files through their node-local cache."""
    corpus = tmp_path / "in.jsonl"
    _corpus(corpus)
    local = run_curate(_cfg(corpus, 1), tmp_path / "local")
    fs = fsspec.filesystem("memory")
    try:
        remote = run_curate(
            _cfg(corpus, 1, work_cache_dir=str(tmp_path / "cache")), "memory://infir-curate-test/w"
        )
        assert remote["totals"]["docs_kept"] == local["totals"]["docs_kept"]
        assert _kept_ids(fs, "/infir-curate-test/w") == _kept_ids(
            fsspec.filesystem("file"), str(tmp_path / "local")
        )
        assert fs.exists("/infir-curate-test/w/_work/dedup.json") and fs.glob(
            "/infir-curate-test/w/_work/sigs/*"
        )
        assert not list((tmp_path / "cache").glob("*/*"))  # the driver's cache is dropped at the end
    finally:
        fs.rm("/infir-curate-test", recursive=True)


def test_work_folder_cache_trusts_only_a_copy_of_the_published_size(tmp_path):
    from infir.curate.workfolder import WorkFolder

    fs = fsspec.filesystem("memory")
    work = WorkFolder("memory://infir-curate-test/wf", "fp", cache_dir=str(tmp_path / "cache"))
    try:
        (work / "runs").mkdir(parents=True)
        (work / "runs/a.bin").write_bytes(bytes(range(16)))
        work.publish(work / "runs/a.bin")
        assert work.sizes("runs", ".bin") == {"a.bin": 16} and work.exists("runs/a.bin")
        assert work.read_range("runs/a.bin", "u1", 4, 3).tolist() == [4, 5, 6]
        (work / "runs/a.bin").write_bytes(b"partial")  # a killed attempt's copy on this node
        assert work.fetch("runs/a.bin").read_bytes() == bytes(range(16))
        assert work.fetch("runs/none.bin", missing_ok=True) is None and work.read_text("none") is None
        other = WorkFolder("memory://infir-curate-test/wf", "fp", cache_dir=str(tmp_path / "other"))
        assert other.fetch("runs/a.bin").read_bytes() == bytes(range(16))  # another node's empty cache
        assert (
            other.local != work.local
            and WorkFolder("memory://infir-curate-test/wf", "fp2").local != work.local
        )
    finally:
        fs.rm("/infir-curate-test", recursive=True)
