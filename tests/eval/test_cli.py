"""`infir eval --model ... --tasks ...` end to end on a tiny local model, and rescoring its samples."""

from __future__ import annotations

import json

from infir.eval.cli import main


def test_eval_then_score_the_saved_samples(tmp_path, tiny_model_dir, shared):
    out = tmp_path / "results.json"
    code = main(
        [
            "--model",
            str(tiny_model_dir),
            "--tasks",
            "reasoning,gsm8k",
            "--limit",
            "3",
            "--max-new-tokens",
            "8",
            "--num-fewshot",
            "1",
            "--batch-size",
            "2",
            "--data",
            f"gsm8k={shared / 'benchmarks' / 'gsm8k'}",
            "--output",
            str(out),
        ]
    )
    assert code == 0
    results = json.loads(out.read_text())["results"]
    assert results["gsm8k"]["n"] == 3 and set(results["gsm8k"]) >= {"strict_match", "flexible_match"}
    assert results["reasoning"]["n"] == 3
    samples_file = tmp_path / "results.gsm8k.samples.jsonl"
    samples = [json.loads(line) for line in samples_file.read_text().splitlines()]
    assert [s["doc_index"] for s in samples] == [0, 1, 2]
    assert all({"prompt", "output", "extracted", "correct"} <= set(s) for s in samples)
    assert samples[0]["prompt"].count("Question: ") == 2  # one few-shot example + the question

    # The saved outputs, plus one reference solution, rescored by `infir eval score`.
    rows = [{"doc_index": s["doc_index"], "completion": s["output"]} for s in samples]
    rows.append({"doc_index": 1, "completion": "so 3 + 4 = 7\n#### 3"})
    (tmp_path / "mine.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    scored_path = tmp_path / "scored.json"
    assert (
        main(
            [
                "score",
                "--task",
                "gsm8k",
                "--samples",
                str(tmp_path / "mine.jsonl"),
                "--data",
                str(shared / "benchmarks" / "gsm8k"),
                "--output",
                str(scored_path),
            ]
        )
        == 0
    )
    scored = json.loads(scored_path.read_text())
    assert [s["correct"] for s in scored["samples"][:3]] == [s["correct"] for s in samples]
    assert scored["samples"][3]["correct"] is True  # GSM8K test item 1 has answer 3
    assert scored["n"] == 4 and "strict_match" in scored["metrics"]


def test_unknown_task_is_a_clear_error(tmp_path, tiny_model_dir, capsys):
    assert main(["--model", str(tiny_model_dir), "--tasks", "gsm9k"]) == 2
    assert "unknown task 'gsm9k'" in capsys.readouterr().err
    assert main(["--list-tasks"]) == 0
    assert "humaneval" in capsys.readouterr().out
