"""A teacher that accepts connections and never answers: Ctrl-C and SIGTERM stop `infir synth` within
seconds with the request cache intact, and without a signal the batch gives up within its stated budget."""

from __future__ import annotations

import json
import signal
import sqlite3
import time

import pytest

from infir.synth.config import EndpointConfig
from infir.synth.http import HttpError, JsonClient
from infir.synth.loopback import LoopbackServer
from tests.reliability.helpers import TRACEBACK, SilentServer, error_block, spawn


def _seeds(path):
    path.write_text(
        "".join(json.dumps({"question": f"What is {i} + 1?", "answer": str(i + 1)}) + "\n" for i in range(12))
    )


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_synth_against_a_silent_teacher(tmp_path, sig, code):
    _seeds(tmp_path / "seeds.jsonl")
    # Half the seeds answered by a live teacher first, so the cache holds replies the signal must not lose.
    with LoopbackServer(lambda body: "The answer is 1.") as live:
        warm = spawn(
            "synth",
            "--seeds",
            "seeds.jsonl",
            "--answer-field",
            "answer",
            "--limit",
            "6",
            "--teacher-url",
            live.url,
            "--model",
            "m",
            "--output",
            "out",
            "--quiet",
            "evolve.rounds=0",
            cwd=tmp_path,
        )
        assert warm.wait(timeout=120) == 0, warm.communicate()[1][-2000:]
    cache = tmp_path / "out" / "cache" / "synth-requests.sqlite"
    with sqlite3.connect(cache) as db:
        before = db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
    assert before > 0
    with SilentServer() as server:
        proc = spawn(
            "synth",
            "--seeds",
            "seeds.jsonl",
            "--answer-field",
            "answer",
            "--teacher-url",
            server.url,
            "--model",
            "m",
            "--output",
            "out",
            "--quiet",
            "evolve.rounds=0",
            cwd=tmp_path,
        )
        deadline = time.time() + 60
        while not server.accepted and time.time() < deadline and proc.poll() is None:
            time.sleep(0.1)
        assert server.accepted, proc.communicate(timeout=5)[1][-2000:]
        time.sleep(1.0)
        sent = time.time()
        proc.send_signal(sig)
        try:
            _, stderr = proc.communicate(timeout=15)
        finally:
            proc.kill()
        took = time.time() - sent
    assert took < 5, f"took {took:.1f}s to stop"
    assert proc.returncode == code and TRACEBACK not in stderr
    line = error_block(stderr)
    assert "interrupted" in line and ("SIGINT" if sig == signal.SIGINT else "SIGTERM") in line
    assert "kept in" in stderr and str(cache.name) in stderr
    with sqlite3.connect(cache) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db.execute("SELECT COUNT(*) FROM responses").fetchone()[0] == before
        for (response,) in db.execute("SELECT response FROM responses"):
            json.loads(response)


def test_a_silent_teacher_is_given_up_on_within_the_stated_budget():
    with SilentServer() as server:
        cfg = EndpointConfig(
            base_url=server.url,
            concurrency=4,
            max_retries=5,
            timeout=1.0,
            give_up_after=2.0,
            backoff_seconds=0.05,
        )
        client = JsonClient(cfg)
        t0 = time.time()
        with pytest.raises(HttpError) as err:
            client.post_many("/chat/completions", [{"messages": [], "i": i} for i in range(64)])
        took = time.time() - t0
    assert took < 2.0 + 3.0, took
    message = str(err.value)
    assert "succeeded for" in message and "giving up after 2 s without a successful reply" in message
    assert "connect timeout 10 s, read timeout 1 s, 5 retries" in message


def test_default_budget_is_minutes_not_an_hour():
    cfg = EndpointConfig(base_url="http://127.0.0.1:9/v1")
    assert cfg.connect_timeout <= 30 and cfg.give_up_after <= 15 * 60 and cfg.timeout <= cfg.give_up_after
    with pytest.raises(ValueError, match="give_up_after"):
        EndpointConfig(base_url="http://127.0.0.1:9/v1", timeout=900)
