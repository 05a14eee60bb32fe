"""The request cache: keys without secrets, hits on rerun, a killed run resumed without a repeated request."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

from infir.synth.cache import ResponseCache, request_key
from infir.synth.config import TeacherConfig
from infir.synth.loopback import LoopbackServer
from infir.synth.pipeline import synthesize
from infir.synth.teachers import ChatRequest, OpenAITeacher

from .conftest import http_config


def test_key_is_canonical_and_namespaced():
    a = request_key(
        "openai:m", {"messages": [{"role": "user", "content": "x"}], "seed": 1, "temperature": 0.7}
    )
    b = request_key(
        "openai:m", {"temperature": 0.7, "seed": 1, "messages": [{"content": "x", "role": "user"}]}
    )
    assert a == b
    assert a != request_key(
        "openai:other", {"messages": [{"role": "user", "content": "x"}], "seed": 1, "temperature": 0.7}
    )
    assert a != request_key(
        "openai:m", {"messages": [{"role": "user", "content": "x"}], "seed": 2, "temperature": 0.7}
    )


def test_key_does_not_depend_on_the_api_key_or_address(monkeypatch):
    req = ChatRequest([{"role": "user", "content": "hi"}], 0.7, 32, seed=5)
    keys = set()
    for secret, url in (("key-one", "http://127.0.0.1:1/v1"), ("key-two", "http://127.0.0.1:2/v1")):
        monkeypatch.setenv("INFIR_TEST_KEY", secret)
        teacher = OpenAITeacher(
            TeacherConfig(type="openai", base_url=url, model="m", api_key_env="INFIR_TEST_KEY"),
            None,
            show_progress=False,
        )
        body = teacher.body(req)
        assert secret not in json.dumps(body)
        keys.add(request_key(teacher.namespace, body))
    assert len(keys) == 1


def test_concurrent_writers_and_reopen(tmp_path):
    cache = ResponseCache(tmp_path / "c.sqlite")

    def write(t: int) -> None:
        for i in range(50):
            cache.put(f"k{t}-{i}", "ns", {"i": i}, {"text": f"{t}-{i}"})

    threads = [threading.Thread(target=write, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    cache.close()
    again = ResponseCache(tmp_path / "c.sqlite")
    assert len(again) == 200
    found = again.get_many([f"k3-{i}" for i in range(50)] + ["absent"])
    assert found["k3-49"] == {"text": "3-49"} and "absent" not in found
    assert again.stats()["hits"] == 50 and again.stats()["misses"] == 1


def test_rerun_asks_nothing_and_gives_the_same_output(tmp_path, seeds_file, server):
    cfg = http_config(seeds_file, server.url)
    first = synthesize(cfg, tmp_path / "out", show_progress=False)
    answered = server.stats.answered
    assert answered == first["requests"]["teacher"]["sent"] == 40 * 4
    output = (tmp_path / "out" / "sft.jsonl").read_text()
    second = synthesize(cfg, tmp_path / "out", show_progress=False)
    assert server.stats.answered == answered  # nothing new reached the server
    assert second["requests"]["teacher"]["cached"] == second["requests"]["teacher"]["asked"] == 160
    assert second["requests"]["teacher"]["sent"] == 0
    assert (tmp_path / "out" / "sft.jsonl").read_text() == output


def test_changed_selection_settings_reuse_every_answer(tmp_path, seeds_file, server):
    synthesize(http_config(seeds_file, server.url), tmp_path / "a", show_progress=False)
    answered = server.stats.answered
    cfg = http_config(
        seeds_file,
        server.url,
        output={"max_per_prompt": 3},
        cache_path=str(tmp_path / "a" / "cache" / "synth-requests.sqlite"),
    )
    summary = synthesize(cfg, tmp_path / "b", show_progress=False)
    assert server.stats.answered == answered and summary["requests"]["teacher"]["sent"] == 0


CHILD = """
import json, sys
from pathlib import Path
from infir.synth.config import SynthConfig
from infir.synth.pipeline import synthesize
cfg = SynthConfig.model_validate(json.loads(Path(sys.argv[1]).read_text()))
synthesize(cfg, Path(sys.argv[2]), show_progress=False)
"""


def test_killed_run_resumes_without_repeating_a_request(tmp_path, seeds_file, reference_teacher):
    total = 40 * 4
    with LoopbackServer(reference_teacher, latency=0.005, hold_after=70) as server:
        cfg = http_config(seeds_file, server.url)
        (tmp_path / "cfg.json").write_text(cfg.model_dump_json())
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(tmp_path / "cfg.json"), str(tmp_path / "run")],
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )
        try:
            assert server.hold_reached.wait(120), "the run never reached the kill point"
            time.sleep(0.5)  # replies already sent reach the client's cache
            child.send_signal(signal.SIGKILL)
            child.wait(30)
        finally:
            if child.poll() is None:
                child.kill()
        answered_before_kill = server.stats.answered
        assert 70 <= answered_before_kill < total
        assert not (tmp_path / "run" / "sft.jsonl").exists()
        server.release()
        summary = synthesize(cfg, tmp_path / "run", show_progress=False)
        teacher = summary["requests"]["teacher"]
        assert teacher["cached"] == answered_before_kill  # everything answered before the kill was kept
        assert server.stats.repeated == 0  # no request was answered twice
        assert len(server.stats.by_key) == server.stats.answered == total
        resumed = (tmp_path / "run" / "sft.jsonl").read_text()
    # The same run without a kill, on a fresh cache, writes the same data.
    with LoopbackServer(reference_teacher) as fresh:
        synthesize(http_config(seeds_file, fresh.url), tmp_path / "clean", show_progress=False)
    assert (tmp_path / "clean" / "sft.jsonl").read_text() == resumed
