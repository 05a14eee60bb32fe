"""A registered filter is switched on by a recipe and gets its own funnel row, in the order it ran."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from infir.curate.config import CurateConfig
from infir.curate.filters import build_extra_filters, register_filter
from infir.curate.pipeline import run_curate
from infir.curate.steps import CurateStep, word_count
from tests.curate.test_pipeline import _small_cfg, _write_input


@register_filter
class ShortDocs(CurateStep):
    """Drops documents of fewer than `min_words` words."""

    name = "📏 short docs"
    step_name = "short_docs"

    def __init__(self, removed_dir: str | None = None, min_words: int = 5):
        super().__init__(removed_dir)
        self.min_words = min_words

    def filter(self, doc):
        return word_count(doc) >= self.min_words or (False, "too_short")


def test_a_recipe_names_registered_filters_only():
    cfg = CurateConfig(extra_filters=[{"name": "short_docs", "options": {"min_words": 3}}])
    [step] = build_extra_filters(cfg.extra_filters, None)
    assert isinstance(step, ShortDocs) and step.min_words == 3
    with pytest.raises(ValidationError, match="unknown curation filter 'nope'"):
        CurateConfig(extra_filters=[{"name": "nope"}])


def test_an_extra_filter_runs_after_the_heuristics_with_its_own_funnel_row(tmp_path):
    _write_input(tmp_path / "in.jsonl.gz")
    cfg = _small_cfg(
        [str(tmp_path / "in.jsonl.gz")], extra_filters=[{"name": "short_docs", "options": {"min_words": 400}}]
    )
    summary = run_curate(cfg, tmp_path / "out")
    names = [s["name"] for s in summary["steps"]]
    assert names == [
        "validate",
        "langid",
        "heuristics",
        "short_docs",
        "recall",
        "dedup",
        "quality",
        "decontam",
        "mixture",
    ]
    row = summary["steps"][3]
    assert row["dropped"].get("too_short", 0) > 0
    assert row["docs_in"] == row["docs_out"] + sum(row["dropped"].values())
    assert list((tmp_path / "out" / "removed" / "short_docs").glob("*.jsonl.gz"))


def test_without_extra_filters_the_section_dumps_as_before_so_old_run_dirs_are_not_curated_again():
    assert "extra_filters" not in CurateConfig().model_dump()
    assert (
        CurateConfig(extra_filters=[{"name": "short_docs"}]).model_dump()["extra_filters"][0]["name"]
        == "short_docs"
    )
