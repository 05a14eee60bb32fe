import json

from infir.report.collect import collect
from infir.report.render import write_report


def _write(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def make_run(root):
    _write(
        root / "curate" / "summary.json",
        {
            "steps": [
                {
                    "name": "validate",
                    "docs_in": 100,
                    "docs_out": 98,
                    "dropped": {"empty": 2},
                    "tokens_in": 5000,
                    "tokens_out": 4900,
                },
                {
                    "name": "dedup",
                    "docs_in": 98,
                    "docs_out": 90,
                    "dropped": {"near_duplicate": 8},
                    "tokens_in": 4900,
                    "tokens_out": 4500,
                },
            ]
        },
    )
    (root / "curate" / "_COMPLETE").write_text("{}")
    _write(
        root / "tokenize" / "summary.json",
        {"domains": {"web": {"docs": 50, "tokens": 3000}, "math": {"docs": 40, "tokens": 2000}}},
    )
    for stage, base in (("pretrain", 6.0), ("sft", 2.0)):
        _write(
            root / stage / "summary.json", {"steps": 3, "tokens": 300, "loss": base - 1, "tokens_per_s": 10.0}
        )
        (root / stage / "metrics.jsonl").write_text(
            "".join(json.dumps({"step": s, "loss": base - s / 3}) + "\n" for s in (1, 2, 3))
        )
    _write(
        root / "eval" / "summary.json",
        {
            "results": {
                "pretrain": {"reasoning": {"accuracy": 0.1, "n": 10}},
                "sft": {"reasoning": {"accuracy": 0.7, "n": 10}},
            },
            "intervals": {
                "pretrain": {"reasoning": {"accuracy": 0.1, "stderr": 0.09, "ci95": [0.018, 0.404], "n": 10}},
                "sft": {"reasoning": {"accuracy": 0.7, "stderr": 0.14, "ci95": [0.397, 0.892], "n": 10}},
            },
            "gains": {
                "reasoning": [
                    {
                        "from": "pretrain",
                        "to": "sft",
                        "diff": 0.6,
                        "stderr": 0.163,
                        "z": 3.67,
                        "n": 10,
                        "improved": 6,
                        "regressed": 0,
                    }
                ]
            },
        },
    )
    for stage, right in (("pretrain", 1), ("sft", 7)):
        (root / "eval" / stage).mkdir(parents=True)
        (root / "eval" / stage / "reasoning.samples.jsonl").write_text(
            "".join(
                json.dumps(
                    {
                        "doc_index": i,
                        "prompt": f"Question: 2 + {i} <b>",
                        "output": f"{stage} says {2 + i}",
                        "extracted": str(2 + i),
                        "correct": i < right,
                    }
                )
                + "\n"
                for i in range(10)
            )
        )


def test_collect_builds_the_funnel_with_tokens(tmp_path):
    make_run(tmp_path)
    data = collect(tmp_path)
    assert [r["step"] for r in data["funnel"]] == ["input", "validate", "dedup", "tokenized"]
    assert data["funnel"][0]["docs"] == 100 and data["funnel"][-1]["tokens"] == 5000
    assert set(data["metrics"]) == {"pretrain", "sft"}
    # the same problems for every stage, spread over the task
    examples = data["examples"]["reasoning"]
    assert [e["doc_index"] for e in examples] == [0, 3, 6]
    assert all(set(e["answers"]) == {"pretrain", "sft"} for e in examples)
    assert (
        examples[1]["answers"]["pretrain"]["correct"] is False
        and examples[1]["answers"]["sft"]["correct"] is True
    )


def test_report_writes_plots_tables_and_escaped_samples(tmp_path):
    make_run(tmp_path)
    path = write_report(tmp_path, title="t")
    html = path.read_text()
    for png in ("funnel.png", "loss.png", "eval.png"):
        assert (tmp_path / "report" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f'src="{png}"' in html
    assert "0.7" in html and "near_duplicate" in html
    assert "0.397 .. 0.892" in html and "+60.0" in html and "16.3" in html  # interval; paired gain and its SE
    assert "Question: 2 + 3 &lt;b&gt;" in html and "Question: 2 + 3 <b>" not in html  # escaped
    assert html.count("Question: 2 + 3 &lt;b&gt;") == 1 and "pretrain says 5" in html and "sft says 5" in html
