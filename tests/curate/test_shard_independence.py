"""Decisions of `infir curate` do not depend on the shard plan, on interruptions or on stale work.

The corpus is built here: a few hundred documents with exact copies and near copies (a few words
changed) placed at random rows, so that under any interleaving of shards some copy would come
before its original.
"""

from __future__ import annotations

import gzip
import json
import os
import random
from pathlib import Path

import pytest

from infir.curate.config import CurateConfig, SourceConfig
from infir.curate.pipeline import run_curate


def _docs() -> list[dict]:
    from infir.data.builtin import iter_builtin

    docs = list(iter_builtin("python_docs", max_docs=120)) + list(iter_builtin("python_stdlib", max_docs=30))
    docs += list(iter_builtin("reasoning_gym", docs_per_family=4))
    return [{"id": d["id"], "text": d["text"], "url": d["url"]} for d in docs]


def _near_copy(text: str, rng: random.Random) -> str:
    words = text.split(" ")
    for _ in range(max(1, len(words) // 60)):
        i = rng.randrange(len(words))
        words[i] = words[i] + "s"
    return " ".join(words)


def build_corpus(path: Path, seed: int = 0) -> dict[str, str]:
    """Writes the corpus; returns {copy id: original id} of the injected copies."""
    rng = random.Random(seed)
    docs = _docs()
    long_docs = [d for d in docs if len(d["text"].split()) > 150]
    copies = {}
    for k, original in enumerate(rng.sample(long_docs, 40)):
        exact = k % 2 == 0
        copy = {
            "id": f"{'exact' if exact else 'near'}-copy-{k}",
            "url": original["url"] + f"?copy={k}",
            "text": original["text"] if exact else _near_copy(original["text"], rng),
        }
        docs.insert(rng.randrange(len(docs) + 1), copy)
        copies[copy["id"]] = original["id"]
    # Plain JSONL: split by byte ranges into as many shards as asked (a compressed file is one task).
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(d) + "\n" for d in docs)
    return copies


def small_cfg(path: Path, **kw) -> CurateConfig:
    cfg = CurateConfig(sources=[SourceConfig(type="jsonl", paths=[str(path)])], **kw)
    cfg.recall.seeds["math"].builtin[0].kwargs["docs_per_family"] = 10
    cfg.recall.seeds["math"].builtin[1].kwargs["n"] = 60
    cfg.recall.seeds["code"].builtin[0].kwargs["n"] = 60
    cfg.decontam.enabled = False  # needs the benchmark registry's data; not what is tested here
    return cfg


def kept_ids(out: Path) -> list[str]:
    return sorted(
        json.loads(line)["id"] for p in (out / "kept").glob("*.jsonl.gz") for line in gzip.open(p, "rt")
    )


def removed_ids(out: Path) -> list[str]:
    return sorted(
        json.loads(line)["id"] for p in (out / "removed").glob("*/*.jsonl.gz") for line in gzip.open(p, "rt")
    )


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("shards")
    copies = build_corpus(root / "in.jsonl")
    return root, copies


@pytest.fixture(scope="module")
def by_tasks(corpus):
    root, _ = corpus
    runs = {}
    for tasks in (1, 2, 4):
        out = root / f"t{tasks}"
        summary = run_curate(small_cfg(root / "in.jsonl", workers=2, tasks=tasks), out)
        runs[tasks] = (out, summary)
    return runs


def test_kept_set_is_the_same_for_1_2_4_tasks(by_tasks, corpus):
    _, copies = corpus
    assert {tasks: summary["totals"]["shards"] for tasks, (_, summary) in by_tasks.items()} == {
        1: 1,
        2: 2,
        4: 4,
    }
    kept = {tasks: kept_ids(out) for tasks, (out, _) in by_tasks.items()}
    assert kept[1] == kept[2] == kept[4]
    funnels = {
        tasks: [(s["name"], s["docs_out"], s["dropped"]) for s in summary["steps"]]
        for tasks, (_, summary) in by_tasks.items()
    }
    assert funnels[1] == funnels[2] == funnels[4]
    # and dedup did its job: of each injected pair at most one survives, and it is the earlier one
    kept_set = set(kept[1])
    dedup = {s["name"]: s for s in by_tasks[1][1]["steps"]}["dedup"]
    assert (
        dedup["dropped"].get("exact_duplicate", 0) >= 15 and dedup["dropped"].get("near_duplicate", 0) >= 10
    )
    assert all(not (c in kept_set and o in kept_set) for c, o in copies.items())


def test_the_first_copy_in_input_order_is_kept(by_tasks, corpus):
    root, copies = corpus
    rows = {json.loads(line)["id"]: i for i, line in enumerate(open(root / "in.jsonl"))}
    out, _ = by_tasks[4]
    removed = {
        json.loads(line)["id"]: json.loads(line)["metadata"]
        for p in (out / "removed/dedup").glob("*.jsonl.gz")
        for line in gzip.open(p, "rt")
    }
    assert removed
    for doc_id, meta in removed.items():
        assert rows[meta["duplicate_of"]] < rows[doc_id], (doc_id, meta["duplicate_of"])


def test_rerun_with_other_workers_starts_over(corpus, tmp_path):
    """Without `tasks`, the shard count comes from `workers`: work done under another shard plan
    cannot be reused (it would read only part of the input)."""
    root, _ = corpus
    plain = root / "in.jsonl"
    out = tmp_path / "out"
    first = run_curate(small_cfg(plain, workers=1), out)
    second = run_curate(small_cfg(plain, workers=2), out)
    assert first["totals"]["shards"] == 1 and second["totals"]["shards"] == 2
    assert second["totals"]["docs_read"] == first["totals"]["docs_read"]
    assert second["totals"]["docs_kept"] == first["totals"]["docs_kept"]


def test_changed_input_starts_over_without_stray_files(corpus, tmp_path):
    root, _ = corpus
    src = tmp_path / "in.jsonl"
    build_corpus(src, seed=0)
    out = tmp_path / "out"
    run_curate(small_cfg(src, workers=2), out)
    # same path, other content (the mtime may not move within the filesystem's resolution)
    build_corpus(src, seed=1)
    with open(src) as f:
        lines = f.readlines()[:150]
    with open(src, "w") as f:
        f.writelines(lines)
    os.utime(src, (os.path.getatime(src), os.path.getmtime(src) + 5))
    summary = run_curate(small_cfg(src, workers=2), out)
    ids = {json.loads(line)["id"] for line in lines}
    assert summary["totals"]["docs_read"] == len(lines)
    assert set(kept_ids(out)) | set(removed_ids(out)) <= ids
    assert len(kept_ids(out)) + len(removed_ids(out)) == len(lines)


@pytest.mark.parametrize("content", ["", "{not json\n\n", json.dumps({"id": "a", "text": "   "}) + "\n"])
def test_nothing_survives_gives_zero_kept_and_the_funnel(tmp_path, content):
    src = tmp_path / "in.jsonl"
    src.write_text(content)
    summary = run_curate(small_cfg(src, workers=2), tmp_path / "out")
    assert summary["totals"]["docs_kept"] == 0
    assert summary["totals"]["docs_read"] == content.count("\n")
    assert summary["steps"] and summary["steps"][0]["name"] == "validate"
    assert kept_ids(tmp_path / "out") == []


def test_cli_reports_zero_kept_with_exit_0(tmp_path, capsys):
    from infir.curate.cli import main

    src = tmp_path / "in.jsonl"
    src.write_text("{broken\n")
    recipe = tmp_path / "r.yaml"
    recipe.write_text("curate:\n  decontam: {enabled: false}\n  recall: {enabled: false}\n")
    assert main(["--input", str(src), "--output", str(tmp_path / "o"), "--recipe", str(recipe)]) == 0
    totals = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert totals["docs_kept"] == 0 and totals["docs_read"] == 1


def test_kill_in_a_later_stage_and_rerun_keeps_the_same_set(corpus, by_tasks, tmp_path):
    """Killed after the dedup pairs are written (the score or finish stage under way), a rerun on
    the same output finishes the run and keeps what an uninterrupted run keeps."""
    import os
    import signal
    import subprocess
    import sys
    import time

    root, _ = corpus
    out = tmp_path / "run"
    script = (
        "import sys; sys.path.insert(0, %r)\n"
        "from test_shard_independence import small_cfg\n"
        "from infir.curate.pipeline import run_curate\n"
        "from pathlib import Path\n"
        "run_curate(small_cfg(Path(%r), workers=2, tasks=4), Path(%r))\n"
    ) % (str(Path(__file__).parent), str(root / "in.jsonl"), str(out))
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # killed with its forked workers, which would be orphaned otherwise
    )
    marker = out / "_work/dedup.json"
    deadline = time.time() + 300
    while time.time() < deadline and not marker.exists() and proc.poll() is None:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert marker.exists() and not (out / "summary.json").exists()
    summary = run_curate(small_cfg(root / "in.jsonl", workers=2, tasks=4), out)
    assert kept_ids(out) == kept_ids(by_tasks[4][0])
    assert summary["totals"]["docs_read"] == by_tasks[4][1]["totals"]["docs_read"]


def test_bounded_sample_is_the_same_for_any_shard_plan(corpus, tmp_path):
    """With fewer training documents than the corpus holds, the classifiers see the same sample
    (the smallest order-key draws), so 1 and 3 tasks still keep the same documents."""
    root, _ = corpus
    runs = []
    for tasks in (1, 3):
        cfg = small_cfg(root / "in.jsonl", workers=2, tasks=tasks, max_train_docs=60)
        summary = run_curate(cfg, tmp_path / f"t{tasks}")
        assert summary["select"]["sample_docs"] == 60
        runs.append(kept_ids(tmp_path / f"t{tasks}"))
    assert runs[0] == runs[1]
