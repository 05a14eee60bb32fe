"""Rollout batches: layout, determinism in (seed, step), reuse across ppo_epochs, state round trip."""

from types import SimpleNamespace

import pytest
import torch

from tests.rl.helpers import DigitsTask, load, rollout_source

KEYS = {
    "reward",
    "reward_std",
    "accuracy",
    "format",
    "completion_tokens",
    "truncated",
    "zero_signal_groups",
    "rollout_s",
    "gen_tokens_per_s",
}


@pytest.fixture()
def model_and_tok(chat_model_dir):
    torch.set_num_threads(1)
    return load(chat_model_dir)


def test_batch_layout_marks_completion_tokens_only(model_and_tok):
    model, tok = model_and_tok
    src = rollout_source(model, tok, DigitsTask(), group_size=4, prompts_per_step=3, max_new_tokens=5)
    batch = src.batch_at(0)
    assert batch["input_ids"].shape[0] == 12 and batch["advantages"].shape == (12,)
    assert KEYS <= batch["metrics"].keys()
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    for row, doc_index in zip(range(12), [i for i in src.prompt_indices(0) for _ in range(4)]):
        prompt = src.prompt_ids[doc_index]
        ids, labels = batch["input_ids"][row].tolist(), batch["labels"][row].tolist()
        assert ids[: len(prompt)] == prompt
        assert all(x == -100 for x in labels[: len(prompt)])  # the prompt is never a target
        completion = [x for x in labels[len(prompt) :] if x != -100]
        assert 1 <= len(completion) <= 5  # max_new_tokens, the end-of-turn token included
        assert ids[len(prompt) : len(prompt) + len(completion)] == completion
        assert all(x == -100 for x in labels[len(prompt) + len(completion) :])  # padding
        if len(completion) < 5:  # it stopped early: only end of turn does that, and it is a target
            assert completion[-1] in src.eos_ids and im_end in src.eos_ids
    # the advantages are group-relative: each group of 4 sums to 0
    assert batch["advantages"].view(3, 4).sum(1).abs().max().item() < 1e-5


def test_rollouts_are_a_function_of_seed_and_step(chat_model_dir):
    torch.set_num_threads(1)
    a = rollout_source(*load(chat_model_dir), DigitsTask(), seed=3)
    b = rollout_source(*load(chat_model_dir), DigitsTask(), seed=3)
    first, again = a.batch_at(2), b.batch_at(2)
    for key in ("input_ids", "labels", "advantages"):
        assert torch.equal(first[key], again[key]), key
    assert first["metrics"]["reward"] == again["metrics"]["reward"]
    later = a.batch_at(3)
    assert later["input_ids"].shape != first["input_ids"].shape or not torch.equal(
        later["input_ids"], first["input_ids"]
    )
    other_seed = rollout_source(*load(chat_model_dir), DigitsTask(), seed=4).batch_at(2)
    assert other_seed["input_ids"].shape != first["input_ids"].shape or not torch.equal(
        other_seed["input_ids"], first["input_ids"]
    )


def test_prompt_order_covers_every_prompt_each_epoch(model_and_tok):
    src = rollout_source(*model_and_tok, DigitsTask(), prompts_per_step=4)
    epoch = [i for r in range(4) for i in src.prompt_indices(r)]  # 16 prompts, 4 per rollout
    assert sorted(epoch) == list(range(16))
    assert [i for r in range(4, 8) for i in src.prompt_indices(r)] != epoch  # a new permutation


def test_ppo_epochs_reuse_the_rollout_with_old_logprobs_and_checkpoint_it(model_and_tok):
    model, tok = model_and_tok
    src = rollout_source(model, tok, DigitsTask(), ppo_epochs=2, ref_model=model)
    it = iter(src)
    first = next(it)
    assert "old_logprobs" in first and "ref_logprobs" in first
    # the policy is the reference here: their log-probs agree, and cover exactly the target tokens
    assert torch.allclose(first["old_logprobs"], first["ref_logprobs"])
    assert ((first["old_logprobs"] != 0) <= (first["labels"][:, 1:] != -100)).all()
    state = src.state_dict()
    assert state["step"] == 1 and state["cached"]["index"] == 0  # between the two steps of rollout 0
    second = next(it)
    assert second is first
    assert "cached" not in src.state_dict()  # at a rollout boundary nothing needs keeping
    fresh = rollout_source(model, tok, DigitsTask(), ppo_epochs=2, ref_model=model)
    fresh.load_state_dict(state)
    assert torch.equal(next(iter(fresh))["input_ids"], first["input_ids"])
    with pytest.raises(ValueError, match="cannot resume exactly"):
        rollout_source(model, tok, DigitsTask(), seed=9).load_state_dict(state)


def test_vllm_engine_pushes_the_policy_weights_and_sends_token_prompts(model_and_tok):
    """The glue around vLLM, with a stand-in engine (vLLM itself needs a GPU): every rollout first loads
    the current weights into the worker's model, and prompts go in as token ids, not re-tokenized text."""
    from infir.eval.generate import Generation
    from infir.rl.rollout import SamplingSettings, VLLMEngine

    model, _ = model_and_tok
    loaded, calls = [], []

    class Worker:  # what vLLM passes to a collective_rpc callable
        model_runner = SimpleNamespace(
            model=SimpleNamespace(load_weights=lambda weights: loaded.extend(weights))
        )

    class FakeBackend:
        llm = SimpleNamespace(
            collective_rpc=lambda fn, args=(): fn(Worker(), *args),
            reset_prefix_cache=lambda: calls.append("reset"),
        )

        def generate(self, prompts, **kw):
            calls.append((prompts, kw))
            return [Generation("1", "eos", [5]) for _ in prompts for _ in range(kw["num_samples"])]

    engine = VLLMEngine.__new__(VLLMEngine)
    engine.backend = FakeBackend()
    engine.sync(model)
    names = dict(loaded)
    assert set(names) == set(model.state_dict()) and "reset" in calls
    assert all(torch.equal(names[k], v) for k, v in model.state_dict().items())
    out = engine.generate([[1, 2], [3]], SamplingSettings(group_size=2, max_new_tokens=4), seed=11)
    prompts, kw = calls[-1]
    assert prompts == [{"prompt_token_ids": [1, 2]}, {"prompt_token_ids": [3]}]
    assert kw["num_samples"] == 2 and kw["seed"] == 11 and kw["return_token_ids"] and len(out) == 4


def test_rows_end_with_end_of_turn_exactly_when_the_model_stopped_there(model_and_tok):
    from infir.eval.generate import Generation

    src = rollout_source(*model_and_tok, DigitsTask())
    im_end = src.tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert src._completion(Generation("12", "eos", [7, 8])) == [
        7,
        8,
        im_end,
    ]  # HF generator: stop token dropped
    assert src._completion(Generation("12", "eos", [7, 8, im_end])) == [7, 8, im_end]  # vLLM keeps it
    assert src._completion(Generation("12", "length", [7, 8])) == [7, 8]  # cut off: no stop to credit
    assert src._completion(Generation("", "stop", [9])) == [9]  # a stop string's tokens are what it chose


def test_groups_without_signal_leave_the_batch(model_and_tok):
    from infir.rl.rollout import RolloutBatches

    assert RolloutBatches._kept_rows(torch.tensor([1.0, 1.0, 0.0, 1.0, 0.5, 0.5]), 2) == [2, 3]
    assert RolloutBatches._kept_rows(torch.tensor([1.0, 1.0, 0.0, 0.0]), 2) == [0, 1]  # none: a null step
    # The first rollout (over a few seeds) that mixes informative and uninformative groups.
    for seed in range(20):
        full = rollout_source(
            *model_and_tok, DigitsTask(), group_size=4, prompts_per_step=4, seed=seed
        ).batch_at(0)
        groups = full["advantages"].view(4, 4).abs().sum(1) > 0
        rows = [r for g in range(4) if groups[g] for r in range(g * 4, g * 4 + 4)] or [0, 1, 2, 3]
        if 0 < len(rows) < 16:
            break
    assert 0 < len(rows) < 16, "no toy rollout mixed informative and uninformative groups"
    kept = rollout_source(
        *model_and_tok, DigitsTask(), group_size=4, prompts_per_step=4, seed=seed, drop_zero_signal=True
    ).batch_at(0)
    assert kept["metrics"]["trained_rows"] == len(rows) and torch.equal(
        kept["advantages"], full["advantages"][rows]
    )
    width = kept["input_ids"].size(1)
    assert torch.equal(kept["input_ids"], full["input_ids"][rows][:, :width])
    assert kept["metrics"]["reward"] == full["metrics"]["reward"]  # rewards are logged over every completion


CHAIN_DOC = {
    "family": "chain_sum",
    "question": "8 + 6 + 7 =",
    "answer": "21",
    "solution": "8 + 6 = 14. 14 + 7 = 21. The answer is 21.",
}


def scripted_source(model, tok, doc, outputs, **options):
    """A one-prompt rollout source whose "policy" writes `outputs` (one group), as the reasoning task."""
    from infir.eval.generate import Generation
    from infir.eval.registry import get_task
    from infir.rl.rewards import Rewarder
    from infir.rl.rollout import RolloutBatches, SamplingSettings

    class Scripted:
        def sync(self, model):
            pass

        def generate(self, prompts, settings, seed):
            out = []
            for text in outputs:
                ids = tok(text, add_special_tokens=False)["input_ids"]
                out.append(
                    Generation(text, "eos", token_ids=ids, prompt_tokens=len(prompts[0]), new_tokens=len(ids))
                )
            return out

    task = get_task("reasoning")
    prompt = tok(task.build_prompt(doc, chat=True, tokenizer=tok), add_special_tokens=False)["input_ids"]
    source = RolloutBatches(
        model,
        tok,
        [doc],
        [prompt],
        Rewarder(task),
        SamplingSettings(group_size=len(outputs), max_new_tokens=40),
        prompts_per_step=1,
        seed=0,
        engine=Scripted(),
        **options,
    )
    return source, prompt


def test_process_advantages_sit_on_the_completion_tokens_of_their_steps(model_and_tok):
    model, tok = model_and_tok
    outputs = ["8 + 6 = 14. 14 + 7 = 21. The answer is 21.", "8 + 6 = 14. 14 + 7 = 22. The answer is 22."]
    completions = [tok(o, add_special_tokens=False)["input_ids"] for o in outputs]
    source, prompt = scripted_source(model, tok, CHAIN_DOC, outputs, advantage="process")
    batch = source.batch_at(0)
    adv, labels = batch["advantages"], batch["labels"]
    assert adv.shape == (2, labels.size(1) - 1)
    scored = labels[:, 1:] != -100
    assert (adv[~scored] == 0).all(), "prompt and padding positions carry no advantage"
    start = len(prompt) - 1
    # step rewards [1, 1, 1] and [1, 0]: mean 4/5, std sqrt(1/5); the first completion's tokens are all
    # pushed up (its end of turn too); the second's second step is pushed down, its first step nets
    # 1/5 - 4/5 < 0, and nothing after its wrong step is trained
    right, wrong = (
        adv[0, start : start + len(completions[0]) + 1],
        adv[1, start : start + len(completions[1]) + 1],
    )
    assert (right > 0).all()
    assert (wrong[:3] < 0).all() and (wrong[-5:] == 0).all()


def test_guidance_adds_the_worked_solution_to_each_group_and_logs_samples_only(model_and_tok):
    model, tok = model_and_tok
    doc = CHAIN_DOC
    wrong = ["8 + 6 = 14. 14 + 7 = 22. The answer is 22.", "8 + 6 = 15. 15 + 7 = 22. The answer is 22."]
    source, _ = scripted_source(model, tok, doc, wrong, guidance=True, drop_zero_signal=True)
    batch = source.batch_at(0)
    assert batch["input_ids"].size(0) == 3  # two samples and the reference, one group
    reference = [t for t in batch["labels"][2].tolist() if t != -100]
    assert tok.decode(reference[:-1]) == doc["solution"] and reference[-1] == source.end_id
    # both samples fail, so the reference alone is pushed up and the samples down
    assert batch["advantages"][2] > 0 and (batch["advantages"][:2] < 0).all()
    assert batch["metrics"]["accuracy"] == 0.0  # the reference is not counted as the policy's
    # without a worked solution there is nothing to guide with
    source.docs = [{**doc, "solution": ""}]
    source._cached = None
    with pytest.raises(ValueError, match="no worked `solution`"):
        source.batch_at(0)


@pytest.mark.parametrize("advantage", ["grpo", "process"])
def test_sft_coef_adds_each_worked_solution_as_a_supervised_row(model_and_tok, advantage):
    from infir.rl.grpo import GRPOObjective, token_logprobs

    model, tok = model_and_tok
    doc = CHAIN_DOC
    # both samples right and alike: the group carries no signal and leaves the batch
    right = [doc["solution"], doc["solution"]]
    source, prompt = scripted_source(
        model, tok, doc, right, sft_coef=0.5, drop_zero_signal=True, advantage=advantage
    )
    batch = source.batch_at(0)
    # the null step keeps the (zero-advantage) group; the worked solution is one more row
    assert batch["input_ids"].size(0) == 3 and batch["metrics"]["supervised_rows"] == 1
    reference = [t for t in batch["labels"][2].tolist() if t != -100]
    assert tok.decode(reference[:-1]) == doc["solution"] and reference[-1] == source.end_id
    adv = batch["advantages"]
    if advantage == "process":
        scored = batch["labels"][2, 1:] != -100
        assert torch.allclose(adv[2][scored], torch.full((len(reference),), 0.5))
        assert (adv[2][~scored] == 0).all() and (adv[:2] == 0).all()
    else:
        assert adv.tolist() == [0.0, 0.0, 0.5]
    # the row's gradient is sft_coef times the supervised loss's (ratio 1 under the surrogate)
    row = {k: batch[k][2:] for k in ("input_ids", "labels", "advantages")}
    objective = GRPOObjective(aggregation="sequence")
    model.zero_grad()
    logits = model(input_ids=row["input_ids"]).logits
    objective.loss_sum(logits, row).backward()
    surrogate = [p.grad.clone() for p in model.parameters() if p.grad is not None]
    model.zero_grad()
    logits = model(input_ids=row["input_ids"]).logits
    (-token_logprobs(logits, row["labels"]).sum() / len(reference) * 0.5).backward()
    supervised = [p.grad.clone() for p in model.parameters() if p.grad is not None]
    assert len(surrogate) == len(supervised) > 0
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(surrogate, supervised))
    # without a worked solution there is nothing to imitate
    source.docs = [{**doc, "solution": ""}]
    source._cached = None
    with pytest.raises(ValueError, match="no worked `solution`"):
        source.batch_at(0)
