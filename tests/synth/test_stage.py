"""The synth stage end to end on a tiny config: funnel, seed pointers, dedup, decontamination, SFT input."""

from __future__ import annotations

import json

import pytest
import yaml
from pydantic import Field

from infir.config import Recipe
from infir.data import reasoning
from infir.run import Stage, run_stage
from infir.sft.config import ConversationSource
from infir.sft.data import load_conversations
from infir.synth import stage as synth_stage
from infir.synth.config import SynthConfig
from infir.synth.generated import solve, write

TINY = {
    "seeds": [
        {
            "type": "generated",
            "name": "gen",
            "families": ["chain_sum", "basic_arithmetic", "simple_equations"],
            "per_family": 40,
            "seed": 3,
        }
    ],
    "teacher": {"type": "generated", "wrong_fraction": 0.3},
    "generation": {"n": 4},
    "evolve": {"rounds": 2, "fraction": 0.5},
}


class SynthRecipe(Recipe):
    """The root recipe with the synth section, as the lead wires it into infir.config."""

    synth: SynthConfig = Field(default_factory=SynthConfig)


SYNTH_STAGE = Stage("synth", ("synth", "seed"), (), synth_stage.run, resumable=True)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth-run")
    recipe = SynthRecipe.model_validate({"name": "t", "stages": ["synth"], "synth": TINY})
    summary = run_stage(recipe, SYNTH_STAGE, root, log=lambda *a: None)
    assert summary["examples"] > 0
    return root


def read(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_outputs_and_summary(run_dir):
    d = run_dir / "synth"
    assert {p.name for p in d.iterdir()} >= {
        "sft.jsonl",
        "summary.json",
        "config.yaml",
        "_COMPLETE",
        "details",
    }
    assert list(d.glob("*.jsonl*")) == [d / "sft.jsonl"]  # the only file SFT's synth source reads
    summary = json.loads((d / "summary.json").read_text())
    for row in summary["funnel"]:
        assert row["in"] == row["out"] + sum(row["dropped"].values()), row
    steps = [r["step"] for r in summary["funnel"]]
    assert steps[:5] == ["load_seeds", "dedup_decontam_seeds", "evolve", "dedup_decontam_evolved", "verify"]
    verify = next(r for r in summary["funnel"] if r["step"] == "verify")
    rejected_wrong = verify["dropped"].get("wrong_answer", 0) + verify["dropped"].get(
        "disagrees_with_majority", 0
    )
    assert 0.2 < rejected_wrong / verify["in"] < 0.4  # the teacher's 30% wrong answers, visibly rejected
    assert summary["examples"] == len(read(d / "sft.jsonl")) == summary["output"]["examples"]
    assert summary["requests"]["teacher"]["sent"] == summary["cache"]["entries"]


def test_kept_answers_are_correct(run_dir):
    """Answers checked against a reference are all right; majority votes can be won by wrong answers
    that happen to agree (the teacher's mistakes are shifts of 1-9), which must stay rare."""
    right = {"math_verify": [], "majority_vote": []}
    for row in read(run_dir / "synth" / "sft.jsonl"):
        question, answer = row["messages"][0]["content"], row["messages"][-1]["content"]
        assert row["messages"][0]["role"] == "user" and row["messages"][-1]["role"] == "assistant"
        right[row["verified_by"]].append(answer == write(*solve(question)))
    assert all(right["math_verify"]) and len(right["math_verify"]) > 100
    assert sum(right["majority_vote"]) >= 0.95 * len(right["majority_vote"]) > 0


def test_evolved_items_point_to_their_seed(run_dir):
    prompts = {r["id"]: r for r in read(run_dir / "synth" / "details" / "prompts.jsonl")}
    evolved = [r for r in prompts.values() if r["parent_id"]]
    assert evolved and any(len(r["evolution"]) == 2 for r in evolved)  # two rounds
    for r in evolved:
        assert r["seed_id"] in prompts and prompts[r["seed_id"]]["parent_id"] is None
        assert r["parent_id"] in prompts and r["reference"] is None
        assert prompts[r["parent_id"]]["evolution"] == r["evolution"][:-1]
    kept = read(run_dir / "synth" / "sft.jsonl")
    assert any(r["verified_by"] == "majority_vote" for r in kept)
    assert all(r["verified_by"] == ("majority_vote" if r["parent_id"] else "math_verify") for r in kept)


def test_sft_reads_the_output(run_dir):
    conversations, report = load_conversations([ConversationSource(type="synth")], run_dir=run_dir)
    assert report.kept == len(conversations) == len(read(run_dir / "synth" / "sft.jsonl"))
    assert report.dropped == {}


def test_rerun_is_skipped_and_force_asks_nothing(run_dir):
    recipe = SynthRecipe.model_validate({"name": "t", "stages": ["synth"], "synth": TINY})
    before = (run_dir / "synth" / "sft.jsonl").read_text()
    said = []
    run_stage(recipe, SYNTH_STAGE, run_dir, log=said.append)
    assert said and said[0].startswith("skipped synth")
    summary = run_stage(recipe, SYNTH_STAGE, run_dir, force=True, log=lambda *a: None)
    assert summary["requests"]["teacher"]["sent"] == 0  # the cache sits outside the stage folder
    assert (run_dir / "synth" / "sft.jsonl").read_text() == before


def test_dedup_and_decontamination_of_seeds(tmp_path):
    from infir.eval.registry import get_task

    benchmark = get_task("reasoning").docs()[:3]  # what the tiny recipe evaluates on
    train = [p.to_dict() for p in reasoning.generate("chain_sum", 5, seed=0, split="train")]
    records = train + train[:2] + benchmark  # two exact copies, three benchmark items
    (tmp_path / "seeds.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    # The benchmark shows its questions as "Question: ...\nAnswer:", so a bare copy holds 3 of its 5
    # 10-grams: 0.5 catches it (the tiny default of 1.0 avoids template false positives and relies on
    # the answer check below).
    cfg = SynthConfig.model_validate(
        {
            **TINY,
            "evolve": {"enabled": False},
            "seeds": [
                {
                    "type": "jsonl",
                    "path": str(tmp_path / "seeds.jsonl"),
                    "answer_field": "answer",
                    "name": "s",
                }
            ],
            "decontam": {"tasks": ["reasoning"], "min_item_fraction": 0.5},
        }
    )
    from infir.synth.pipeline import synthesize

    summary = synthesize(cfg, tmp_path / "out", show_progress=False)
    row = next(r for r in summary["funnel"] if r["step"] == "dedup_decontam_seeds")
    assert row == {
        "step": "dedup_decontam_seeds",
        "unit": "prompts",
        "in": 10,
        "out": 5,
        "dropped": {"exact_duplicate": 2, "contaminated:reasoning": 3},
    }
    assert summary["requests"]["teacher"]["asked"] == 5 * 4  # nothing asked for dropped prompts


def test_answers_reproducing_a_benchmark_solution_are_dropped(tmp_path):
    from infir.eval.registry import get_task
    from infir.synth.pipeline import synthesize

    # Stock two-step answers ("8 - 3 = 5. The answer is 5.") are too short to identify an item and are
    # deliberately not flagged (see curate's short_min_words); solutions long enough to be specific are.
    benchmark = [d for d in get_task("reasoning").docs() if len(d["solution"].split()) >= 12][:4]
    assert len(benchmark) == 4
    (tmp_path / "seeds.jsonl").write_text("".join(json.dumps(r) + "\n" for r in benchmark))
    cfg = SynthConfig.model_validate(
        {
            **TINY,
            "evolve": {"enabled": False},
            "teacher": {"wrong_fraction": 0.0},
            "seeds": [
                {
                    "type": "jsonl",
                    "path": str(tmp_path / "seeds.jsonl"),
                    "answer_field": "answer",
                    "name": "s",
                }
            ],
        }
    )
    summary = synthesize(cfg, tmp_path / "out", show_progress=False)
    row = next(r for r in summary["funnel"] if r["step"] == "decontaminate_answers")
    assert row["in"] == 4 and row["dropped"] == {"contaminated:reasoning": 4} and summary["examples"] == 0


def test_config_written_to_the_run_dir_round_trips(run_dir):
    written = yaml.safe_load((run_dir / "synth" / "config.yaml").read_text())
    assert SynthConfig.model_validate(written["synth"]) == SynthConfig.model_validate(TINY)


def test_near_duplicate_prompts_with_minhash(tmp_path):
    from infir.curate.config import DedupConfig
    from infir.synth.items import Item
    from infir.synth.select import dedup_prompts

    base = (
        "A farmer has a field of wheat that yields a fixed number of bushels every season, and he sells "
        "each bushel at the market for a price that changes every week during the harvest months."
    )
    prompts = [
        base,
        base.replace("farmer", "grower"),
        base.replace("wheat", "rice") + " What is X?",
        "Something else entirely about trains leaving two cities at different speeds toward each other.",
    ]
    items = [
        Item(id=str(i), prompt=p, domain="math", source="t", seed_id=str(i)) for i, p in enumerate(prompts)
    ]
    kept, reasons = dedup_prompts(items, DedupConfig(minhash=True, verify_threshold=0.5))
    assert [i.id for i in kept] == ["0", "3"] and reasons == {"near_duplicate": 2}
    kept, reasons = dedup_prompts(items, DedupConfig(minhash=False))
    assert len(kept) == 4 and not reasons
