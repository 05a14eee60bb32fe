"""End to end on small inputs: output contract, funnel invariant, bad input, unreadable files, resume."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from infir.curate.cli import main as cli_main
from infir.curate.config import CurateConfig, SourceConfig
from infir.curate.pipeline import run_curate
from tests.curate.interrupt import kill_after_first_completion


QUESTION = "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May."


def _gsm8k_copy(folder: Path) -> str:
    """A one-item GSM8K test split: decontamination reads it through the evaluation registry."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "test.jsonl").write_text(
        json.dumps({"question": QUESTION, "answer": "24 + 48 = 72\n#### 72"}) + "\n"
    )
    return str(folder)


def _small_cfg(paths: list[str], **kw) -> CurateConfig:
    cfg = CurateConfig(sources=[SourceConfig(type="jsonl", paths=paths)], workers=2, **kw)
    # keep the unit run quick: small seed sets, no benchmark registry needed
    cfg.recall.seeds["math"].builtin[0].kwargs["docs_per_family"] = 10
    cfg.recall.seeds["math"].builtin[1].kwargs["n"] = 60
    cfg.recall.seeds["code"].builtin[0].kwargs["n"] = 60
    cfg.recall.rounds = 1
    cfg.decontam.tasks = ["gsm8k"]
    cfg.decontam.data_paths = {"gsm8k": _gsm8k_copy(Path(paths[0]).parent / "gsm8k")}
    return cfg


def _write_input(path: Path) -> None:
    from infir.data.builtin import iter_builtin

    docs = list(iter_builtin("python_docs", max_docs=30)) + list(iter_builtin("python_stdlib", max_docs=10))
    docs += list(iter_builtin("reasoning_gym", docs_per_family=5))
    lines = [json.dumps({"id": d["id"], "text": d["text"], "url": d["url"]}) for d in docs]
    lines.insert(3, json.dumps({"id": "copy", "text": docs[0]["text"], "url": "u"}))
    lines.insert(5, "{not json")
    lines.insert(7, json.dumps({"id": "notext", "body": "x"}))
    lines.insert(9, json.dumps({"id": "empty", "text": "  \n "}))
    lines.insert(
        11,
        json.dumps(
            {
                "id": "quoted",
                "text": f"Forum: {QUESTION} How do I set this up? I tried adding the two "
                "months together but my teacher said the method was wrong, and the book does not "
                "explain it. Could someone walk me through the reasoning step by step, please? I have been stuck on "
                "this for an hour. My sister says the answer is a multiple of twelve. The lesson "
                "was about halves and doubles. Thank you all for reading this long question.",
            }
        ),
    )
    data = ("\n".join(lines) + "\n").encode()
    data += b'{"id": "bad-utf8", "text": "\xff\xfe broken"}\n'
    with gzip.open(path, "wb") as f:
        f.write(data)


@pytest.fixture(scope="module")
def curated(tmp_path_factory):
    root = tmp_path_factory.mktemp("curate")
    _write_input(root / "in.jsonl.gz")
    out = root / "out"
    summary = run_curate(_small_cfg([str(root / "in.jsonl.gz")]), out)
    return root, out, summary


def _kept_ids(out: Path) -> set[str]:
    return {json.loads(line)["id"] for p in (out / "kept").glob("*.jsonl.gz") for line in gzip.open(p, "rt")}


def test_output_contract_and_invariant(curated):
    _, out, summary = curated
    names = [s["name"] for s in summary["steps"]]
    assert names == ["validate", "langid", "heuristics", "recall", "dedup", "quality", "decontam", "mixture"]
    for s in summary["steps"]:
        assert s["docs_in"] == s["docs_out"] + sum(s["dropped"].values())
    for a, b in zip(summary["steps"], summary["steps"][1:]):
        assert a["docs_out"] == b["docs_in"]
    kept = [json.loads(line) for p in (out / "kept").glob("*.jsonl.gz") for line in gzip.open(p, "rt")]
    assert kept and all(r["metadata"]["domain"] in {"web", "math", "code"} for r in kept)
    assert all(r["url"] for r in kept) and all("recall_scores" in r["metadata"] for r in kept)
    assert json.loads((out / "summary.json").read_text())["totals"] == summary["totals"]
    mix = json.loads((out / "mixtures.json").read_text())
    assert set(mix) == {"pretrain", "anneal"} and "sample_rate" in mix["pretrain"]["domains"]["web"]


def test_bad_input_counted_and_written_aside(curated):
    _, out, summary = curated
    dropped = summary["steps"][0]["dropped"]
    assert dropped == {"malformed_json": 1, "missing_text": 1, "empty": 1, "invalid_utf8": 1}
    aside = [
        json.loads(line) for p in (out / "removed/validate").glob("*.jsonl.gz") for line in gzip.open(p, "rt")
    ]
    assert sorted(r["metadata"]["reason"] for r in aside) == sorted(dropped)


def test_dedup_and_decontam_remove_their_documents(curated):
    _, out, summary = curated
    steps = {s["name"]: s for s in summary["steps"]}
    assert steps["dedup"]["dropped"].get("exact_duplicate", 0) >= 1
    assert steps["decontam"]["dropped"] == {"contaminated:gsm8k": 1}
    assert "quoted" not in _kept_ids(out) and "copy" not in _kept_ids(out)


def test_unreadable_file_fails_with_its_path(tmp_path, capsys):
    broken = tmp_path / "broken.jsonl.gz"
    broken.write_bytes(b"\x1f\x8b\x08\x00garbage that is not gzip")
    assert cli_main(["--input", str(broken), "--output", str(tmp_path / "o")]) == 1
    assert str(broken) in capsys.readouterr().err
    assert cli_main(["--input", str(tmp_path / "missing.jsonl"), "--output", str(tmp_path / "o2")]) == 1


def test_kill_and_resume_gives_the_same_kept_set(curated, tmp_path):
    root, out, _ = curated
    plain = tmp_path / "in.jsonl"  # uncompressed, so 4 tasks really read it and the kill lands between them
    with gzip.open(root / "in.jsonl.gz", "rb") as f:
        plain.write_bytes(f.read())
    script = (
        "import sys; sys.path.insert(0, %r)\n"
        "from test_pipeline import _small_cfg\n"
        "from infir.curate.pipeline import run_curate\n"
        "cfg = _small_cfg([%r]); cfg.tasks = 4\n"
        "run_curate(cfg, %r)\n"
    ) % (str(Path(__file__).parent), str(plain), str(tmp_path / "run"))
    completions = tmp_path / "run/_work/logs/scan/completions"
    kill_after_first_completion(script, completions, timeout=120)
    assert completions.is_dir() and not (tmp_path / "run/summary.json").exists()
    cfg = _small_cfg([str(plain)])
    cfg.tasks = 4
    summary = run_curate(cfg, tmp_path / "run")
    assert summary["totals"]["shards"] == 4
    fresh = _small_cfg([str(plain)])
    fresh.tasks = 4
    run_curate(fresh, tmp_path / "fresh")
    assert _kept_ids(tmp_path / "run") == _kept_ids(tmp_path / "fresh")


def test_ray_executor_gives_the_same_kept_set(curated, tmp_path):
    import ray

    root, out, _ = curated
    # address="local": a cluster of its own, never one a file in /tmp/ray says is running (it may be stale)
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        cfg = _small_cfg([str(root / "in.jsonl.gz")], executor="ray")
        summary = run_curate(cfg, tmp_path / "ray")
    finally:
        ray.shutdown()
    assert summary["totals"]["executor"] == "ray"
    assert _kept_ids(tmp_path / "ray") == _kept_ids(out)


def test_benchmark_that_cannot_load_stops_the_run_with_its_name(curated, tmp_path, capsys):
    root, _, _ = curated
    # Default config: every registry task, from the hub, which these tests cannot reach.
    assert cli_main(["--input", str(root / "in.jsonl.gz"), "--output", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "benchmark task 'gsm8k' cannot be loaded" in err and "decontam.data_paths.gsm8k" in err
    assert not (tmp_path / "o/kept").exists()
