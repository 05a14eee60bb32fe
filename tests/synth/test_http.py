"""The HTTP client against the loopback server: retries, backoff, rate limit, concurrency cap, secrets."""

from __future__ import annotations

import logging
import threading
import time

import pytest
import yaml

from infir.synth.config import EndpointConfig, SynthConfig, TeacherConfig
from infir.synth.http import HttpError, JsonClient, SecretError
from infir.synth.loopback import LoopbackServer
from infir.synth.pipeline import synthesize
from infir.synth.teachers import ChatRequest, OpenAITeacher

from .conftest import http_config

SECRET = "sk-test-Zq81-secret-value-7731"


def echo(body: dict) -> str:
    return "The answer is " + str(len(body["messages"][-1]["content"])) + "."


def client_for(server, sleeps=None, **cfg) -> JsonClient:
    endpoint = EndpointConfig(base_url=server.url, **{"backoff_seconds": 0.2, **cfg})
    return JsonClient(endpoint, sleep=(sleeps.append if sleeps is not None else time.sleep))


def chat(i: int = 0) -> dict:
    return {"model": "m", "messages": [{"role": "user", "content": f"q{i}"}], "seed": i}


def test_retries_429_and_500_then_succeeds_honouring_retry_after():
    faults = {1: 429, 2: 500}
    with LoopbackServer(echo, faults=lambda n, body: faults.get(n), retry_after=1.5) as server:
        sleeps: list[float] = []
        reply = client_for(server, sleeps, max_retries=3).post("/chat/completions", chat())
        assert reply["choices"][0]["message"]["content"] == "The answer is 2."
        assert server.stats.statuses == {429: 1, 500: 1, 200: 1}
        assert sleeps == [1.5, 1.5]  # the server's Retry-After, not our own backoff


def test_backoff_grows_exponentially_with_jitter_and_gives_up():
    with LoopbackServer(echo, faults=lambda n, body: 503, retry_after=None) as server:
        sleeps: list[float] = []
        client = client_for(server, sleeps, max_retries=4, backoff_seconds=0.2, max_backoff_seconds=1.0)
        with pytest.raises(HttpError) as err:
            client.post("/chat/completions", chat())
        assert err.value.status == 503 and err.value.retryable
        assert server.stats.received == 5  # one try and four retries
        caps = [0.2, 0.4, 0.8, 1.0]  # doubling, capped at max_backoff_seconds
        assert len(sleeps) == 4 and all(c / 2 <= s <= c for s, c in zip(sleeps, caps))
        assert client.stats.to_dict()["failed"] == {"http_503": 1}


def test_client_errors_are_not_retried():
    with LoopbackServer(echo, faults=lambda n, body: 400) as server:
        sleeps: list[float] = []
        with pytest.raises(HttpError) as err:
            client_for(server, sleeps, max_retries=5).post("/chat/completions", chat())
        assert err.value.status == 400 and not err.value.retryable
        assert server.stats.received == 1 and sleeps == []


def test_dropped_connection_is_retried():
    # The server drops the first request's connection without answering (a crashed worker).
    with LoopbackServer(echo, hold_after=0) as server:
        sleeps: list[float] = []
        client = client_for(server, sleeps, max_retries=2, timeout=5)
        threading.Timer(0.3, server.release).start()
        reply = client.post("/chat/completions", chat())
        assert reply["choices"][0]["message"]["content"].startswith("The answer is")
        assert client.stats.retries == 1 and server.stats.held == 1


def test_rate_limit_spaces_requests():
    with LoopbackServer(echo) as server:
        client = client_for(server, concurrency=8, requests_per_second=40)
        t0 = time.perf_counter()
        results = client.post_many("/chat/completions", [chat(i) for i in range(20)])
        elapsed = time.perf_counter() - t0
        assert all(isinstance(r, dict) for r in results)
        assert elapsed >= 19 / 40 - 0.02
        gaps = [b - a for a, b in zip(server.stats.arrival_times, server.stats.arrival_times[1:])]
        assert sum(gaps) / len(gaps) >= 0.9 / 40


def test_concurrency_is_capped_and_reached():
    with LoopbackServer(echo, latency=0.15) as server:
        client = client_for(server, concurrency=3)
        results = client.post_many("/chat/completions", [chat(i) for i in range(12)])
        assert [r["choices"][0]["message"]["content"] for r in results] == [echo(chat(i)) for i in range(12)]
        assert server.stats.max_in_flight == 3


def test_results_keep_input_order_and_failures_stay_in_place():
    with LoopbackServer(echo, faults=lambda n, body: 400 if body["seed"] == 3 else None) as server:
        results = client_for(server, concurrency=4, max_retries=0).post_many(
            "/chat/completions", [chat(i) for i in range(6)]
        )
        assert isinstance(results[3], HttpError)
        assert [r["choices"][0]["message"]["content"] for i, r in enumerate(results) if i != 3] == [
            echo(chat(i)) for i in range(6) if i != 3
        ]


def test_a_wrong_key_stops_the_batch_at_once(monkeypatch):
    monkeypatch.setenv("INFIR_TEST_KEY", "wrong")
    with LoopbackServer(echo, api_key="right") as server:
        client = JsonClient(EndpointConfig(base_url=server.url, api_key_env="INFIR_TEST_KEY", concurrency=2))
        with pytest.raises(HttpError, match="stopped: .*HTTP 401"):
            client.post_many("/chat/completions", [chat(i) for i in range(200)])
        assert server.stats.received <= 4  # what was in flight, not 200 failures


def test_an_unreachable_server_stops_the_batch():
    with LoopbackServer(echo) as server:
        url = server.url
    # The server is gone: every connection is refused.
    client = JsonClient(EndpointConfig(base_url=url, concurrency=2, max_retries=0))
    with pytest.raises(HttpError, match="8 requests in a row failed"):
        client.post_many("/chat/completions", [chat(i) for i in range(500)])
    assert client.stats.requests < 20


def test_missing_key_variable_is_named(monkeypatch):
    monkeypatch.delenv("INFIR_TEST_KEY", raising=False)
    with pytest.raises(SecretError, match="INFIR_TEST_KEY"):
        JsonClient(EndpointConfig(base_url="http://127.0.0.1:9/v1", api_key_env="INFIR_TEST_KEY"))


def test_a_pasted_key_is_refused_as_api_key_env():
    with pytest.raises(ValueError, match="looks like a secret.*pass the NAME of the variable"):
        TeacherConfig(type="openai", base_url="http://127.0.0.1:1/v1", model="m", api_key_env=SECRET)


def test_wrong_key_fails_with_a_hint_and_without_the_key(monkeypatch):
    monkeypatch.setenv("INFIR_TEST_KEY", SECRET)
    with LoopbackServer(echo, api_key="another-key") as server:
        client = JsonClient(EndpointConfig(base_url=server.url, api_key_env="INFIR_TEST_KEY", max_retries=3))
        with pytest.raises(HttpError) as err:
            client.post("/chat/completions", chat())
        assert err.value.status == 401 and "api_key_env" in str(err.value)
        assert SECRET not in str(err.value) and SECRET not in repr(client)
        assert server.stats.received == 1  # 401 is not retried


def test_redact_scrubs_the_key(monkeypatch):
    monkeypatch.setenv("INFIR_TEST_KEY", SECRET)
    client = JsonClient(EndpointConfig(base_url="http://127.0.0.1:9/v1", api_key_env="INFIR_TEST_KEY"))
    assert client.redact(f"server said: bad token {SECRET}") == "server said: bad token ***"


def test_secret_never_in_logs_cache_or_written_config(
    tmp_path, seeds_file, reference_teacher, monkeypatch, caplog, capsys
):
    monkeypatch.setenv("INFIR_TEST_KEY", SECRET)
    caplog.set_level(logging.DEBUG)
    faults = lambda n, body: 429 if n % 7 == 0 else None  # noqa: E731 - retries log and fail paths too
    with LoopbackServer(reference_teacher, api_key=SECRET, faults=faults) as server:
        cfg = http_config(seeds_file, server.url, teacher={"api_key_env": "INFIR_TEST_KEY"})
        summary = synthesize(cfg, tmp_path / "out", show_progress=False)
        assert server.stats.authorization == {f"Bearer {SECRET}"}  # the key was sent, in the header
    assert summary["examples"] > 0 and summary["requests"]["teacher"]["http"]["retries"] > 0
    dumped = (
        yaml.safe_dump(cfg.model_dump(mode="json"))
        + SynthConfig.model_validate(cfg.model_dump()).model_dump_json()
    )
    assert "INFIR_TEST_KEY" in dumped and SECRET not in dumped
    out = capsys.readouterr()
    assert SECRET not in caplog.text + out.out + out.err
    for path in (tmp_path / "out").rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


def test_teacher_parses_replies_and_reports_bad_ones(monkeypatch):
    replies = iter(["fine", ("cut", "length")])

    def respond(body):
        return next(replies)

    with LoopbackServer(respond) as server:
        teacher = OpenAITeacher(
            TeacherConfig(type="openai", base_url=server.url, model="m", concurrency=1),
            None,
            show_progress=False,
        )
        reqs = [ChatRequest([{"role": "user", "content": f"q{i}"}], 0.0, 16, seed=i) for i in range(2)]
        out = teacher.complete(reqs)
        assert (out[0].text, out[0].finish_reason) == ("fine", "stop")
        assert (out[1].text, out[1].finish_reason) == ("cut", "length")
