"""`infir run RECIPE --check` lists every external input and what this machine cannot reach."""

import os
import socket
import subprocess
import sys

ENV = {**os.environ, "HF_HUB_OFFLINE": "1"}


def check(*args, cwd, env=ENV):
    return subprocess.run(
        [sys.executable, "-m", "infir", "run", *args, "--check"],
        cwd=cwd,
        env={**env, "COLUMNS": "250"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def row(out: str, text: str) -> str:
    lines = [line for line in out.splitlines() if text in line]
    assert lines, f"{text!r} not listed:\n{out}"
    return lines[0]


def test_the_tiny_recipe_needs_nothing_from_outside(tmp_path):
    out = check("tiny", "--run-dir", str(tmp_path / "run"), cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "writable" in row(out.stdout, "filesystem")
    assert "0 missing" in out.stdout
    assert not (tmp_path / "run").exists()  # a check writes nothing


def test_the_1b_recipe_lists_what_this_machine_cannot_reach(tmp_path):
    present = tmp_path / "math_seeds.jsonl"
    present.write_text('{"text": "x"}\n')
    out = check(
        "infir-1b",
        "--run-dir",
        str(tmp_path / "run"),
        f"curate.recall.seeds.math.paths=[{present}]",
        cwd=tmp_path,
    )
    assert out.returncode == 1
    assert "ok" in row(out.stdout, str(present))
    for missing in (
        "koutch/stackoverflow_python",
        "127.0.0.1:8000",
        "meta-llama/Llama-3.2-1B",
        "HuggingFaceFW/fineweb-edu",
        "gsm8k: openai/gsm8k",
        "CUDA devices",
    ):
        assert "missing" in row(out.stdout, missing), missing
    # the seeds and quality labels are made by the run's inputs stage: no external input
    assert "seeds/stackoverflow_positive.jsonl" not in out.stdout and "quality_annotations" not in out.stdout
    assert "HF_HUB_OFFLINE" in row(out.stdout, "meta-llama/Llama-3.2-1B")


def test_an_endpoint_is_reached_and_its_key_variable_named_never_its_value(tmp_path):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    try:
        base = [
            "tiny",
            "--run-dir",
            str(tmp_path / "run"),
            "synth.teacher.type=openai",
            "synth.teacher.model=m",
            f"synth.teacher.base_url=http://127.0.0.1:{port}/v1",
            "synth.teacher.api_key_env=PREFLIGHT_TEST_KEY",
        ]
        unset = check(*base, cwd=tmp_path)
        assert unset.returncode == 1
        assert "PREFLIGHT_TEST_KEY is NOT set" in row(unset.stdout, f"127.0.0.1:{port}")
        secret = "value-that-must-not-be-printed"
        with_key = check(*base, cwd=tmp_path, env={**ENV, "PREFLIGHT_TEST_KEY": secret})
        assert with_key.returncode == 0, with_key.stdout
        assert "accepts connections" in row(with_key.stdout, f"127.0.0.1:{port}")
        assert secret not in with_key.stdout + with_key.stderr
    finally:
        server.close()
    gone = check(*base, cwd=tmp_path, env={**ENV, "PREFLIGHT_TEST_KEY": "k"})
    assert gone.returncode == 1 and "no connection" in row(gone.stdout, f"127.0.0.1:{port}")
