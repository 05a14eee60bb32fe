"""The 1B recipe makes what its curate section reads; a recall cap below the asked seeds is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from infir.cli import main
from infir.config import RecipeError, load_recipe
from infir.curate.config import RecallConfig, RecallSeedSource
from infir.run import MARKER


def test_infir_1b_inputs_stage_writes_every_file_curate_reads():
    recipe = load_recipe("infir-1b")
    assert recipe.stages[:2] == ["inputs", "curate"]
    recall, made = recipe.curate.recall, set(recipe.inputs.outputs())
    read = {p for s in [*recall.seeds.values(), *recall.negative_seeds.values()] for p in s.paths}
    read.add(recipe.curate.quality.labels_path)
    assert read == made
    for domain, spec in recipe.inputs.recall_seeds.items():
        assert spec.positives.size == recall.seeds[domain].limit <= recall.max_positives


def test_recall_cap_below_the_asked_seeds_is_a_config_error():
    with pytest.raises(ValueError, match="max_positives=1500"):
        RecallConfig(seeds={"math": RecallSeedSource(paths=["m.jsonl"], limit=200000)})
    assert RecallConfig(
        seeds={"math": RecallSeedSource(paths=["m.jsonl"], limit=200000)}, max_positives=200000
    )
    with pytest.raises(ValueError, match="seeds.code.limit=2000"):  # the default limit, seed files given
        RecallConfig(seeds={"code": RecallSeedSource(paths=["c.jsonl"])})
    RecallConfig()  # the defaults' builtin generators are sized by their own arguments
    RecallConfig.model_validate(
        RecallConfig().model_dump()
    )  # survives a round trip (the curate CLI makes one)
    with pytest.raises(RecipeError, match="curate.recall"):
        load_recipe("infir-1b", ["curate.recall.max_positives=1500"])


def test_cli_runs_the_stage_from_a_recipe_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("web.jsonl").write_text("".join(json.dumps({"text": f"page {i}"}) + "\n" for i in range(50)))
    Path("r.yaml").write_text(
        yaml.safe_dump(
            {
                "name": "r",
                "stages": ["inputs"],
                "inputs": {
                    "recall_seeds": {
                        "math": {
                            "positives": {
                                "sources": [{"paths": ["web.jsonl"]}],
                                "size": 10,
                                "out": "seeds/m.jsonl",
                            }
                        }
                    }
                },
            }
        )
    )
    assert main(["inputs", "r.yaml", "--run-dir", "run"]) == 0
    assert len(Path("seeds/m.jsonl").read_text().splitlines()) == 10
    assert (tmp_path / "run" / "inputs" / MARKER).exists()
    assert main(["inputs", "r.yaml", "--run-dir", "run"]) == 0  # skipped: complete and unchanged


def test_preflight_lists_the_inputs_datasets_and_not_the_files_they_become(tmp_path):
    from infir.preflight import check

    recipe = load_recipe("infir-1b")
    found = check(recipe, tmp_path / "run", ["inputs", "curate"])
    files = {i.what for i in found if i.kind == "file"}
    assert not files & set(recipe.inputs.outputs())
    inputs_datasets = {i.what for i in found if i.stage == "inputs" and i.kind == "dataset"}
    assert {"open-web-math/open-web-math", "koutch/stackoverflow_python"} <= inputs_datasets
    assert any(i.stage == "inputs" and i.kind == "endpoint" for i in found)
    # run alone, curate does need the seed files (nothing in this run makes them)
    alone = {i.what for i in check(recipe, tmp_path / "run", ["curate"]) if i.kind == "file"}
    assert "seeds/math_positive.jsonl" in alone
