import json

from infir.report.collect import collect
from infir.report.render import write_report


def _write(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def make_run(root):
    _write(root / "curate" / "summary.json", {"steps": [
        {"name": "validate", "docs_in": 100, "docs_out": 98, "dropped": {"empty": 2}, "tokens_in": 5000, "tokens_out": 4900},
        {"name": "dedup", "docs_in": 98, "docs_out": 90, "dropped": {"near_duplicate": 8}, "tokens_in": 4900, "tokens_out": 4500},
    ]})
    (root / "curate" / "_COMPLETE").write_text("{}")
    _write(root / "tokenize" / "summary.json", {"domains": {"web": {"docs": 50, "tokens": 3000},
                                                            "math": {"docs": 40, "tokens": 2000}}})
    for stage, base in (("pretrain", 6.0), ("sft", 2.0)):
        _write(root / stage / "summary.json", {"steps": 3, "tokens": 300, "loss": base - 1, "tokens_per_s": 10.0})
        (root / stage / "metrics.jsonl").write_text("".join(
            json.dumps({"step": s, "loss": base - s / 3}) + "\n" for s in (1, 2, 3)))
    _write(root / "eval" / "summary.json", {"results": {"pretrain": {"reasoning": {"accuracy": 0.1, "n": 10}},
                                                        "sft": {"reasoning": {"accuracy": 0.7, "n": 10}}}})
    (root / "eval" / "sft").mkdir(parents=True)
    (root / "eval" / "sft" / "reasoning.samples.jsonl").write_text(json.dumps(
        {"prompt": "Question: 2 + 2 <b>", "output": "2 + 2 = 4. The answer is 4.", "extracted": "4",
         "correct": True}) + "\n")


def test_collect_builds_the_funnel_with_tokens(tmp_path):
    make_run(tmp_path)
    data = collect(tmp_path)
    assert [r["step"] for r in data["funnel"]] == ["input", "validate", "dedup", "tokenized"]
    assert data["funnel"][0]["docs"] == 100 and data["funnel"][-1]["tokens"] == 5000
    assert set(data["metrics"]) == {"pretrain", "sft"}
    assert data["samples"]["sft"]["reasoning"][0]["extracted"] == "4"


def test_report_writes_plots_tables_and_escaped_samples(tmp_path):
    make_run(tmp_path)
    path = write_report(tmp_path, title="t")
    html = path.read_text()
    for png in ("funnel.png", "loss.png", "eval.png"):
        assert (tmp_path / "report" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f'src="{png}"' in html
    assert "0.7" in html and "near_duplicate" in html
    assert "Question: 2 + 2 &lt;b&gt;" in html and "Question: 2 + 2 <b>" not in html  # escaped
