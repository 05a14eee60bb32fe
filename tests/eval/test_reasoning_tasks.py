"""The tiny recipe's held-out reasoning task and reasoning-gym families."""

from __future__ import annotations

import json

import pytest

from infir.data.reasoning import is_heldout
from infir.eval.registry import family_prefixes, get_task


def test_heldout_problems_in_corpus_format():
    task = get_task("reasoning", n=10, seed=3)
    docs = task.docs()
    assert len(docs) == 30 and {d["family"] for d in docs} == {
        "chain_sum",
        "basic_arithmetic",
        "simple_equations",
    }
    assert all(is_heldout(d["question"]) for d in docs)
    doc = docs[0]
    assert task.build_prompt(doc) == f"Question: {doc['question']}\nAnswer:"
    assert task.stops(chat=False) == ["\n\n", "Question:"] and task.stops(chat=True) == []
    shots = task.build_prompt(doc, num_fewshot=2).split("\n\n")
    assert len(shots) == 3 and all(s.startswith("Question: ") for s in shots)
    assert "The answer is" in shots[0] and not any(is_heldout(s.split("\n")[0][10:]) for s in shots[:2])


def test_exact_match_after_the_answer_is():
    task = get_task("reasoning:chain_sum", n=5)
    docs = task.docs()
    assert len(docs) == 5 and task.name == "reasoning:chain_sum"
    doc = docs[0]
    assert task.evaluate(doc, task.reference_output(doc))["correct"]
    assert task.evaluate(doc, f"blah. The answer is {doc['answer']}.")["extracted"] == doc["answer"]
    wrong = str(int(doc["answer"]) + 1)
    assert not task.evaluate(doc, f"The answer is {wrong}.")["correct"]
    assert not task.evaluate(doc, doc["answer"])["correct"]  # no "The answer is": no commitment
    assert task.reward(doc, f"The answer is {doc['answer']}") == 1.0
    metrics = get_task("reasoning", n=4).aggregate(
        [{"correct": True, "family": "a"}, {"correct": False, "family": "b"}]
    )
    assert metrics == {"accuracy": 0.5, "accuracy_a": 1.0, "accuracy_b": 0.0}


def test_chat_prompt_is_the_bare_question(tiny_model_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    task = get_task("reasoning", n=2)
    doc = task.docs()[0]
    expected = tok.apply_chat_template(
        [{"role": "user", "content": doc["question"]}], tokenize=False, add_generation_prompt=True
    )
    assert task.build_prompt(doc, chat=True, tokenizer=tok) == expected
    with pytest.raises(ValueError, match="chat template"):
        task.build_prompt(doc, chat=True, tokenizer=None)


def test_saved_problem_file_and_decontamination_texts(tmp_path):
    task = get_task("reasoning", n=3)
    path = tmp_path / "heldout.jsonl"
    path.write_text("".join(json.dumps(d) + "\n" for d in task.docs()))
    loaded = get_task("reasoning", data_path=path)
    assert loaded.docs() == task.docs()
    texts = list(task.decontamination_texts())
    assert texts[0] == "Question: " + task.docs()[0]["question"] + "\nAnswer:"
    assert texts[1] == task.docs()[0]["solution"]


def test_reasoning_gym_family_scored_by_its_own_checker():
    assert {"rg", "reasoning"} <= set(family_prefixes())
    task = get_task("rg:leg_counting", n=4, seed=1)
    doc = task.docs()[0]
    good = task.evaluate(doc, f"Let me count... <answer>{doc['answer']}</answer>")
    assert good == {"correct": True, "extracted": doc["answer"], "score": 1.0}
    assert task.reward(doc, "<answer>-1</answer>") == 0.0
    assert not task.evaluate(doc, "no tags")["correct"]
    assert task.build_prompt(doc).startswith("Put the final answer between <answer> and </answer> tags.")
    with pytest.raises(KeyError, match="no generator"):
        get_task("rg:not_a_generator")


def test_first_step_copy_is_judged_against_the_reference_steps_operands():
    task = get_task("reasoning:basic_arithmetic", n=1)
    doc = {
        "family": "basic_arithmetic",
        "question": "Calculate 4 + 5 * -1.",
        "answer": "-1",
        "solution": "5 * -1 = -5. 4 + -5 = -1. The answer is -1.",
    }
    assert task.evaluate(doc, "5 * -1 = -4. 4 + -4 = 0. The answer is 0.")[
        "first_step_copied"
    ]  # copied, miscounted
    assert not task.evaluate(doc, "5 * 1 = 5. The answer is 5.")["first_step_copied"]  # sign lost
    assert not task.evaluate(doc, "The answer is -1.")["first_step_copied"]  # no step at all
    metrics = task.aggregate(
        [
            {"correct": True, "first_step_copied": True},
            {"correct": False, "first_step_copied": False},
            {"correct": False, "first_step_copied": True},
        ]
    )
    assert metrics["first_step_copied"] == pytest.approx(2 / 3) and metrics["accuracy"] == pytest.approx(
        1 / 3
    )


def test_generated_problems_are_generated_once_per_process_and_handed_out_as_new_lists():
    from infir.data import reasoning

    reasoning._generated.cache_clear()
    first = reasoning.generate("chain_sum", 40, 3, split="heldout")
    first.clear()  # a caller's list is its own
    again = reasoning.generate("chain_sum", 40, 3, split="heldout")
    assert len(again) == 40 and reasoning._generated.cache_info().hits == 1
    # the same problems as generating afresh, which extra params force
    fresh = reasoning.generate("chain_sum", 40, 3, split="heldout", min_terms=2)
    assert [p.question for p in again] == [p.question for p in fresh]
    assert all(is_heldout(p.question) for p in again)
