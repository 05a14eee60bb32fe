"""Quality annotation through synth's teacher client, and the classifier curate trains on its labels."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from infir.config import Recipe
from infir.inputs.annotate import load_prompt
from infir.run import run_stage
from infir.stages import STAGES
from infir.synth.http import SecretError
from infir.synth.loopback import LoopbackServer

REPO = Path(__file__).resolve().parents[2]


def benchmark():
    path = REPO / "benchmarks" / "quality_annotation.py"
    spec = importlib.util.spec_from_file_location("quality_annotation", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["quality_annotation"] = module
    spec.loader.exec_module(module)
    return module


def test_packaged_prompt_is_fineweb_edu_and_parses_its_own_format():
    prompt = load_prompt("fineweb_edu")
    messages = prompt.messages("Photosynthesis turns light into sugar.")
    assert messages[-1]["content"].count("Photosynthesis turns light into sugar.") == 1
    assert "additive 5-point scoring system" in messages[-1]["content"]
    assert prompt.parse("Clear and focused.\nEducational score: 4") == 4
    assert prompt.parse("Educational score:  3") == 3  # the prompt's own format has two spaces
    assert prompt.parse("**Educational score:** 5") == 5
    assert prompt.parse('Use "Educational score: <total points>". ... Educational score: 2') == 2
    assert prompt.parse("Educational score: 7") is None and prompt.parse("I rate it highly.") is None


def annotate_recipe(tmp_path: Path, url: str, texts: list[str], size: int, key_env: str) -> Recipe:
    pool = tmp_path / "pool.jsonl"
    pool.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    return Recipe.model_validate(
        {
            "name": "t",
            "stages": ["inputs"],
            "inputs": {
                "annotate": {
                    "sample": {
                        "sources": [{"paths": [str(pool)]}],
                        "size": size,
                        "out": str(tmp_path / "labels.jsonl"),
                    },
                    "teacher": {
                        "type": "openai",
                        "base_url": url,
                        "model": "m",
                        "api_key_env": key_env,
                        "concurrency": 4,
                        "max_retries": 3,
                        "backoff_seconds": 0.01,
                        "temperature": 0.0,
                    },
                    "batch": 7,
                }
            },
        }
    )


def test_retries_failures_and_leaves_unparsable_replies_out(tmp_path, monkeypatch):
    monkeypatch.setenv("T_KEY", "sk-test-abc")
    texts = [f"Document number {i} about fractions." for i in range(30)]

    def respond(body):
        doc = body["messages"][-1]["content"]
        n = int(doc.split("Document number ")[1].split()[0])
        return "No idea." if n % 10 == 3 else f"Fine.\nEducational score: {n % 6}"

    # every fifth request first gets a 503: the client retries it
    def faults(n, body):
        return 503 if n % 5 == 0 else None

    with LoopbackServer(respond, api_key="sk-test-abc", faults=faults) as server:
        recipe = annotate_recipe(tmp_path, server.url, texts, 30, "T_KEY")
        out = run_stage(recipe, STAGES["inputs"], tmp_path / "run", log=lambda *a: None)
        out = out["outputs"]["annotate"]
    rows = [json.loads(line) for line in (tmp_path / "labels.jsonl").read_text().splitlines()]
    assert out["unparsed"] == 3 and out["failed"] == 0 and out["client"]["retries"] > 0
    assert len(rows) == 27 and all(set(r) == {"text", "score"} for r in rows)
    assert all(r["score"] == int(r["text"].split()[2]) % 6 for r in rows)
    assert server.stats.authorization == {"Bearer sk-test-abc"}
    assert [str(p) for p in tmp_path.rglob("*") if p.is_file() and b"sk-test-abc" in p.read_bytes()] == []
    assert "T_KEY" in (tmp_path / "run" / "inputs" / "config.yaml").read_text()


def test_missing_key_variable_fails_naming_it(tmp_path, monkeypatch):
    monkeypatch.delenv("T_ABSENT_KEY", raising=False)
    with LoopbackServer(lambda body: "Educational score: 1") as server:
        recipe = annotate_recipe(tmp_path, server.url, ["a text"], 1, "T_ABSENT_KEY")
        with pytest.raises(SecretError, match="T_ABSENT_KEY"):
            run_stage(recipe, STAGES["inputs"], tmp_path / "run", log=lambda *a: None)
        assert server.stats.received == 0


@pytest.mark.shared
def test_classifier_trained_on_annotations_recovers_the_hidden_ranking(shared, tmp_path, monkeypatch):
    qa = benchmark()
    monkeypatch.setenv(qa.KEY_ENV, "placeholder")  # measure() sets its own random key; restored afterwards
    figures = qa.measure(shared, tmp_path, annotate=500, heldout=300, concurrency=8, bootstrap_peer=False)
    # The teacher's integer labels are the rule plus noise, rounded: their own rank correlation with the
    # rule (`spearman_teacher_labels`, same documents) is what learning them perfectly would give. A
    # classifier that learned the rule, not the noise, comes near it; 0.6 is far above an unrelated score.
    assert figures["spearman"] > 0.6, figures
    assert figures["spearman"] > figures["spearman_teacher_labels"] - 0.1, figures
    assert figures["kept_jaccard"] > 0.4 and figures["kept_recall"] > 0.6, figures
    assert figures["annotated"] == 500 and figures["unparsed"] == 0 and figures["failed"] == 0
    assert figures["requests_sent"] > 0
    assert figures["rerun_requests"] == 0 and figures["repeated_requests"] == 0, figures
    assert figures["rerun_from_cache"] == 500
    assert figures["key_in_files"] == 0


def test_a_run_stopped_halfway_resumes_asking_only_the_unanswered(tmp_path, monkeypatch):
    monkeypatch.setenv("T_KEY", "k")
    texts = [f"Document number {i} about decimals." for i in range(40)]

    def respond(body):
        return f"Educational score: {len(body['messages'][-1]['content']) % 6}"

    # the endpoint starts refusing after 15 requests: the batch stops, the stage fails without a marker
    def refuse(n, body):
        return 401 if n > 15 else None

    with LoopbackServer(respond, faults=refuse) as first:
        recipe = annotate_recipe(tmp_path, first.url, texts, 40, "T_KEY")
        with pytest.raises(Exception, match="401"):
            run_stage(recipe, STAGES["inputs"], tmp_path / "run", log=lambda *a: None)
        answered = set(first.stats.by_key)
    assert len(answered) == 15 and not (tmp_path / "labels.jsonl").exists()
    with LoopbackServer(respond) as second:  # another address: the cache is keyed by model, not URL
        recipe = annotate_recipe(tmp_path, second.url, texts, 40, "T_KEY")
        out = run_stage(recipe, STAGES["inputs"], tmp_path / "run", log=lambda *a: None)
        out = out["outputs"]["annotate"]
        assert second.stats.answered == 25 and not answered & set(second.stats.by_key)
    assert out["requests"]["cached"] == 15 and out["written"] == 40


def test_annotation_teacher_decodes_greedily_unless_told_otherwise():
    from infir.inputs.config import AnnotateConfig

    sample = {"sources": [{"paths": ["x.jsonl"]}], "size": 3, "out": "o.jsonl"}
    teacher = {"type": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "m"}
    assert AnnotateConfig.model_validate({"sample": sample, "teacher": teacher}).teacher.temperature == 0.0
    hot = AnnotateConfig.model_validate({"sample": sample, "teacher": {**teacher, "temperature": 0.6}})
    assert hot.teacher.temperature == 0.6
    with pytest.raises(ValueError, match="teacher.type: openai"):
        AnnotateConfig.model_validate({"sample": sample, "teacher": {"type": "generated"}})
