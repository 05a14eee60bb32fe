"""Malformed input at every entry point: exit status 2 (or 1), one line naming the problem, no traceback.

Each case is what a user typed; `expect` are fragments the last stderr line must hold. `--debug` must
bring the traceback back for a failure that has one.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.reliability.helpers import TRACEBACK, infir, error_block


def _files(root: Path) -> None:
    (root / "bad.yaml").write_text("name: x\npretrain:\n  max_steps: [1, 2\n")
    (root / "nonutf.yaml").write_bytes(b"name: caf\xe9\nseed: 1\n")
    (root / "unknown.yaml").write_text("name: x\npretrain:\n  max_stepz: 3\n")
    (root / "wrongtype.yaml").write_text("name: x\nseed: 1\n\n\npretrain:\n  max_steps: lots\n")
    (root / "markup.yaml").write_text("name: x\ntokenize:\n  dtype: '[/x]'\n")
    (root / "curate-bad.yaml").write_text("curate: {workers: [\n")
    (root / "afile").write_text("not a directory\n")
    (root / "docs.jsonl").write_text('{"text": "hello world"}\n')


CASES = [
    # (id, argv, exit status, fragments of the one line)
    ("bad-yaml", ["pretrain", "bad.yaml", "--dry-run"], 2, ["bad.yaml", "not valid YAML"]),
    ("non-utf8", ["pretrain", "nonutf.yaml", "--dry-run"], 2, ["nonutf.yaml", "not UTF-8"]),
    (
        "unknown-key-line",
        ["pretrain", "unknown.yaml", "--dry-run"],
        2,
        ["pretrain.max_stepz", "[line 3]", "unknown key"],
    ),
    (
        "wrong-type-line",
        ["pretrain", "wrongtype.yaml", "--dry-run"],
        2,
        ["pretrain.max_steps", "[line 6]", "expected int"],
    ),
    (
        "override-tag",
        ["pretrain", "tiny", "pretrain.max_stepz=3", "--dry-run"],
        2,
        ["[override]", "unknown key"],
    ),
    ("markup-in-value", ["tokenize", "markup.yaml", "--dry-run"], 2, ["tokenize.dtype", "'[/x]'"]),
    (
        "markup-in-override",
        ["pretrain", "tiny", "pretrain.optimizer.lr=a[/x]b", "--dry-run"],
        2,
        ["pretrain.optimizer.lr", "[override]", "'a[/x]b'"],
    ),
    (
        "bool-as-int",
        ["pretrain", "tiny", "pretrain.max_steps=true", "--dry-run"],
        2,
        ["pretrain.max_steps", "a boolean is not a number"],
    ),
    ("run-dir-is-file", ["report", "tiny", "--run-dir", "afile"], 2, ["afile", "not a directory"]),
    ("markup-run-dir-is-file", ["report", "tiny", "--run-dir", "afile/[/x]"], 2, ["afile/[/x]"]),
    (
        "report-missing-dir",
        ["report", "nonexistent-run"],
        2,
        ["run directory nonexistent-run does not exist"],
    ),
    (
        "eval-batch-size-0",
        ["eval", "--model", "m", "--tasks", "reasoning", "--batch-size", "0"],
        2,
        ["--batch-size", "at least 1"],
    ),
    (
        "eval-unknown-task",
        ["eval", "--model", "m", "--tasks", "nosuch[/x]"],
        2,
        ["unknown task 'nosuch[/x]'"],
    ),
    (
        "export-markup-path",
        ["export", "--model", "no[/x]", "--format", "gguf", "--out", "x.gguf"],
        2,
        ["no[/x]", "config.json"],
    ),
    (
        "curate-workers-negative",
        ["curate", "--input", "docs.jsonl", "--output", "out", "--workers", "-3"],
        2,
        ["--workers", "at least 1"],
    ),
    (
        "curate-workers-zero",
        ["curate", "--input", "docs.jsonl", "--output", "out", "--workers", "0"],
        2,
        ["--workers", "at least 1"],
    ),
    (
        "curate-bad-recipe",
        ["curate", "--input", "docs.jsonl", "--output", "out", "--recipe", "curate-bad.yaml"],
        2,
        ["curate-bad.yaml", "not valid YAML"],
    ),
    (
        "curate-non-utf8-recipe",
        ["curate", "--input", "docs.jsonl", "--output", "out", "--recipe", "nonutf.yaml"],
        2,
        ["nonutf.yaml", "not UTF-8"],
    ),
    (
        "stage-needs-upstream",
        ["tokenize", "tiny", "--run-dir", "fresh"],
        1,
        ["stage 'tokenize' failed", "needs the output of 'curate'", "error.log"],
    ),
    (
        "synth-secret-as-env-name",
        [
            "synth",
            "--seeds",
            "docs.jsonl",
            "--teacher-url",
            "http://127.0.0.1:9/v1",
            "--model",
            "m",
            "--output",
            "so",
            "--api-key-env",
            "hf_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789",
        ],
        2,
        ["looks like a secret"],
    ),
]


@pytest.mark.parametrize("argv,code,expect", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_malformed_input_gives_one_clear_line(tmp_path, argv, code, expect):
    _files(tmp_path)
    out = infir(*argv, cwd=tmp_path, timeout=120)
    assert out.returncode == code, out.stderr[-2000:]
    assert TRACEBACK not in out.stderr, out.stderr[-2000:]
    assert "MarkupError" not in out.stderr
    line = error_block(out.stderr)
    for fragment in expect:
        assert fragment in line, (fragment, line)


def test_a_failed_stage_keeps_its_traceback_and_debug_prints_it(tmp_path):
    out = infir("tokenize", "tiny", "--run-dir", "fresh", cwd=tmp_path, timeout=120)
    log = tmp_path / "fresh" / "tokenize" / "error.log"
    assert out.returncode == 1 and TRACEBACK not in out.stderr
    assert TRACEBACK in log.read_text() and "needs the output of 'curate'" in log.read_text()
    debug = infir("tokenize", "tiny", "--run-dir", "fresh", "--debug", cwd=tmp_path, timeout=120)
    assert debug.returncode == 1 and TRACEBACK in debug.stderr


def test_a_key_passed_as_the_variable_name_is_never_written_or_echoed(tmp_path):
    secret = "hf_QzLw8TnVbX2kRpM5sYdJ7cHfG4aUeN9o"
    _files(tmp_path)
    direct = infir(
        "synth",
        "--seeds",
        "docs.jsonl",
        "--teacher-url",
        "http://127.0.0.1:9/v1",
        "--model",
        "m",
        "--output",
        "so",
        "--api-key-env",
        secret,
        cwd=tmp_path,
        timeout=120,
    )
    staged = infir(
        "synth",
        "tiny",
        "--run-dir",
        "run",
        "synth.teacher.type=openai",
        "synth.teacher.base_url=http://127.0.0.1:9/v1",
        "synth.teacher.model=m",
        f"synth.teacher.api_key_env={secret}",
        cwd=tmp_path,
        timeout=120,
    )
    for out in (direct, staged):
        assert out.returncode == 2
        assert secret not in out.stderr + out.stdout
        assert "pass the NAME of the variable that holds the key" in out.stderr
    written = [p for p in tmp_path.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]
    assert written == []


@pytest.mark.parametrize(
    "value",
    [
        "sk-proj-4fGh82kLmN0pQrStUv",
        "ghp_0123456789abcdefABCDEF0123456789abcd",
        "ABCD1234EFGH5678IJKL9012MNOP3456QR",
        "AKIAIOSFODNN7EXAMPLE",
        "openai-key",
        "my.key",
    ],
)
def test_key_shaped_names_are_refused(value):
    from pydantic import ValidationError

    from infir.synth.config import TeacherConfig

    with pytest.raises(ValidationError) as err:
        TeacherConfig(type="openai", base_url="http://127.0.0.1:9/v1", model="m", api_key_env=value)
    assert "looks like a secret" in str(err.value)


@pytest.mark.parametrize("value", ["OPENAI_API_KEY", "HF_TOKEN", "TEACHER_KEY_2", "_K"])
def test_variable_names_are_accepted(value):
    from infir.synth.config import TeacherConfig

    assert (
        TeacherConfig(
            type="openai", base_url="http://127.0.0.1:9/v1", model="m", api_key_env=value
        ).api_key_env
        == value
    )
