"""`infir synth --seeds FILE ...` (the direct form, no run directory)."""

from __future__ import annotations

import json

from infir.data import reasoning
from infir.synth.cli import main

from .conftest import word_problems, write_jsonl


def test_direct_form_with_an_http_teacher(tmp_path, server, monkeypatch, capsys):
    monkeypatch.setenv("TEACHER_KEY_FOR_TEST", "value-never-written")
    seeds = write_jsonl(tmp_path / "wp.jsonl", word_problems(40))
    rc = main(
        [
            "--seeds",
            str(seeds),
            "--answer-field",
            "answer",
            "--answer-format",
            "gsm8k",
            "--teacher-url",
            server.url,
            "--model",
            "t",
            "--api-key-env",
            "TEACHER_KEY_FOR_TEST",
            "--n",
            "2",
            "--concurrency",
            "4",
            "--output",
            str(tmp_path / "out"),
            "--quiet",
            "evolve.enabled=false",
            "decontam.enabled=false",
        ]
    )
    assert rc == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    rows = (tmp_path / "out" / "sft.jsonl").read_text().splitlines()
    assert printed["examples"] == len(rows) > 30 and server.stats.answered == 80
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["verify"]["candidates"] == 80
    config = (tmp_path / "out" / "config.yaml").read_text()
    assert "TEACHER_KEY_FOR_TEST" in config and "value-never-written" not in config


def test_direct_form_with_the_generated_teacher(tmp_path, capsys):
    problems = [p.to_dict() for p in reasoning.generate("basic_arithmetic", 20, seed=2)]
    seeds = write_jsonl(tmp_path / "gen.jsonl", problems)
    assert (
        main(
            [
                "--seeds",
                str(seeds),
                "--answer-field",
                "answer",
                "--output",
                str(tmp_path / "out"),
                "--quiet",
                "evolve.rounds=0",
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["examples"] >= 18


def test_bad_input_fails_with_a_message(tmp_path, capsys):
    assert main(["--seeds", str(tmp_path / "absent.jsonl"), "--output", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["--seeds", "x.jsonl", "--output", str(tmp_path / "o"), "generation.n=0"]) == 2
    assert "generation.n" in capsys.readouterr().err
