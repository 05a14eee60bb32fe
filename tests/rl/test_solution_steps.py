"""Partial credit for reproducing a worked solution's steps, and the reward built on it."""

import pytest
import torch

from infir.eval.registry import get_task
from infir.rl.config import RewardConfig
from infir.rl.grpo import clipped_surrogate, process_advantages
from infir.rl.rewards import Rewarder
from infir.rl.solution_steps import reference_prefix_share, solution_steps, step_rewards

EQUATION = (
    "Subtract 4 from both sides: -3*w = 1 - 4 = -3. Divide both sides by -3: w = -3 / -3 = 1. "
    "The answer is 1."
)


def test_solution_steps_are_its_sentences_without_the_answer():
    assert solution_steps(EQUATION) == [
        "Subtract 4 from both sides: -3*w = 1 - 4 = -3.",
        "Divide both sides by -3: w = -3 / -3 = 1.",
    ]
    assert solution_steps("2.5 * 2 = 5.  5 + 1 = 6.\nThe answer is 6.") == ["2.5 * 2 = 5.", "5 + 1 = 6."]
    assert solution_steps("The answer is 6.") == [] and solution_steps("") == []


@pytest.mark.parametrize(
    "output, matched",
    [
        (EQUATION, 2),
        ("Subtract 4 from both  sides: -3*w = 1 - 4 = -3. Divide both sides by -3: w = -3 / -3 = 2.", 1),
        # a true but unrelated first step earns nothing, even when a later sentence matches
        ("0 - 0 = 0. Divide both sides by -3: w = -3 / -3 = 1. The answer is 1.", 0),
        ("The answer is 1.", 0),
    ],
)
def test_the_longest_run_of_reference_steps_written_first(output, matched):
    assert reference_prefix_share(EQUATION, output) == (2, matched)


def test_step_reward_adds_the_share_of_reference_steps_followed():
    doc = {
        "family": "chain_sum",
        "question": "8 + 6 + 7 =",
        "answer": "21",
        "solution": "8 + 6 = 14. 14 + 7 = 21. The answer is 21.",
    }
    r = Rewarder(get_task("reasoning"), RewardConfig(correct=1.0, format=0.0, steps=0.5))
    right = r.score(doc, "8 + 6 = 14. 14 + 7 = 21. The answer is 21.")
    assert right.total == pytest.approx(1.5) and (right.reference_steps, right.steps_matched) == (2, 2)
    lucky = r.score(doc, "8 + 6 = 15. 15 + 6 = 21. The answer is 21.")  # right number, wrong steps
    assert lucky.total == pytest.approx(1.0)
    sound_start = r.score(doc, "8 + 6 = 14. 14 + 7 = 22. The answer is 22.")
    assert sound_start.total == pytest.approx(0.25)
    no_solution = {k: v for k, v in doc.items() if k != "solution"}
    assert r.score(no_solution, "8 + 6 = 14. 14 + 7 = 21. The answer is 21.").total == 1.0
    off = Rewarder(get_task("reasoning"), RewardConfig(correct=1.0, format=0.0))
    assert off.score(doc, "8 + 6 = 14. 14 + 7 = 22. The answer is 22.").total == 0.0


CHAIN = "8 + 6 = 14. 14 + 7 = 21. The answer is 21."


def pieces(text):  # one "token" per character: the step ends are character indices
    return list(text)


def test_step_rewards_judge_steps_in_order_and_stop_at_the_first_wrong_one():
    right = "8 + 6 = 14. 14 + 7 = 21. The answer is 21."
    assert step_rewards(CHAIN, pieces(right) + [""], True) == [
        (10, 1.0),
        (23, 1.0),
        (42, 1.0),
    ]  # "" = end of turn
    assert step_rewards(CHAIN, pieces("8 + 6 = 14. 14 + 7 = 22. The answer is 22."), False) == [
        (10, 1.0),
        (23, 0.0),
    ]
    assert step_rewards(CHAIN, pieces("8 + 6 = 15. 15 + 7 = 22."), False) == [(10, 0.0)]
    # every step right but the answer sentence copied wrongly; a skipped step leaves the answer unearned
    assert step_rewards(CHAIN, pieces("8 + 6 = 14. 14 + 7 = 21. The answer is 12."), False)[-1] == (41, 0.0)
    assert step_rewards(CHAIN, pieces("8 + 6 = 14. The answer is 21."), True) == [(10, 1.0), (28, 0.0)]
    assert step_rewards(CHAIN, pieces("no idea"), False) == [(6, 0.0)]
    assert step_rewards(CHAIN, [], False) == []


def test_process_advantages_by_hand():
    # step rewards of a group of 4: [1, 1, 1], [1, 0], [0], [1, 1, 0] -> mean 2/3, sample std 1/2:
    # a right step is worth +2/3, a wrong one -4/3; a token sums its step's value and the later ones'
    group = [[(1, 1.0), (3, 1.0), (4, 1.0)], [(1, 1.0), (2, 0.0)], [(0, 0.0)], [(0, 1.0), (1, 1.0), (2, 0.0)]]
    adv = process_advantages(group, 4, eps=0.0)
    up, down = 2 / 3, -4 / 3
    assert adv[0] == pytest.approx([3 * up, 3 * up, 2 * up, 2 * up, up])
    assert adv[1] == pytest.approx([up + down, up + down, down])
    assert adv[2] == pytest.approx([down])
    assert adv[3] == pytest.approx([2 * up + down, up + down, down])
    assert process_advantages([[(0, 1.0)], [(1, 1.0)]], 2) == [[0.0], [0.0, 0.0]]  # all equal: no signal
    with pytest.raises(ValueError, match="groups of 3"):
        process_advantages(group, 3)
    # per-step credit: each token holds its own step's value, so a right step before a wrong one stays up
    own = process_advantages(group, 4, eps=0.0, cumulative=False)
    assert own[0] == pytest.approx([up, up, up, up, up])
    assert own[1] == pytest.approx([up, up, down])
    assert own[2] == pytest.approx([down])
    assert own[3] == pytest.approx([up, up, down])


def test_clipped_surrogate_takes_one_advantage_per_token():
    logp = torch.zeros(1, 3)
    loss, _ = clipped_surrogate(logp, logp, torch.tensor([[1.0, -2.0, 0.0]]), 0.2, 0.2)
    assert loss.tolist() == [[-1.0, 2.0, 0.0]]
