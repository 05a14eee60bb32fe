import math

import pytest

from infir.eval.stats import accuracy_summary, compare_stages, paired_difference, wilson_interval


def test_wilson_interval_matches_the_textbook_values():
    lo, hi = wilson_interval(81, 263)  # Wilson (1927) style example: p = 0.308
    assert lo == pytest.approx(0.2553, abs=1e-3) and hi == pytest.approx(0.3662, abs=1e-3)
    assert wilson_interval(0, 20)[0] == 0.0 and wilson_interval(0, 20)[1] > 0.1  # not the degenerate [0, 0]


def test_accuracy_summary():
    s = accuracy_summary([True] * 30 + [False] * 70)
    assert s["accuracy"] == 0.3 and s["n"] == 100
    assert s["stderr"] == pytest.approx(math.sqrt(0.3 * 0.7 / 100))
    assert s["ci95"][0] < 0.3 < s["ci95"][1]


def test_paired_difference_counts_only_disagreements():
    before = [True] * 40 + [False] * 60
    after = [True] * 40 + [True] * 10 + [False] * 50  # 10 newly right, none newly wrong
    d = paired_difference(before, after)
    assert d["diff"] == pytest.approx(0.10) and d["improved"] == 10 and d["regressed"] == 0
    # the paired SE is well below the unpaired one (sqrt(p1 q1 / n + p2 q2 / n) ~ 0.07)
    assert d["stderr"] == pytest.approx(math.sqrt(0.1 * 0.9 * 100 / 99 / 100))
    assert d["z"] == pytest.approx(d["diff"] / d["stderr"])
    with pytest.raises(ValueError, match="same problems"):
        paired_difference([True], [True, False])


def test_compare_stages_pairs_by_problem_in_stage_order():
    per_stage = {
        "pretrain": {0: False, 1: False, 2: True},
        "sft": {2: True, 0: True, 1: False},
        "rl": {0: True, 1: True, 2: True},
    }
    intervals, gains = compare_stages(per_stage)
    assert intervals["sft"]["accuracy"] == pytest.approx(2 / 3)
    assert [(g["from"], g["to"]) for g in gains] == [("pretrain", "sft"), ("sft", "rl")]
    assert gains[0]["improved"] == 1 and gains[0]["regressed"] == 0
