"""A tiny chat model, a toy task and a rollout source for the RL tests (all made locally, in seconds)."""

from __future__ import annotations

from pathlib import Path

import torch

from infir.eval.task import Task

TOY_SHAPE = {
    "preset": None,
    "hidden_size": 32,
    "num_layers": 2,
    "num_heads": 2,
    "intermediate_size": 64,
    "max_position_embeddings": 256,
}


def build_chat_model(path: Path, seed: int = 0) -> Path:
    """A random 2-layer Llama with infir's own ChatML tokenizer (digits split), set up as an SFT model is."""
    from infir.data.reasoning import generate
    from infir.model.llm import ModelConfig, build_model
    from infir.tokenize.chat import use_chat_eos
    from infir.tokenize.config import TokenizerConfig
    from infir.tokenize.tokenizer import train_tokenizer

    texts = [f"{p.question}\n{p.solution}" for p in generate("chain_sum", 200, seed=1)]
    tokenizer = train_tokenizer(texts, TokenizerConfig(vocab_size=320), log=lambda *_: None)
    torch.manual_seed(seed)
    model = build_model(ModelConfig(**TOY_SHAPE), tokenizer=tokenizer)
    use_chat_eos(tokenizer, model)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    model.generation_config.save_pretrained(path)
    return path


class DigitsTask(Task):
    """Toy task: the reward is the share of the output's characters that are digits.

    A random model writes digits now and then; a policy gradient that works makes it write more.
    """

    name = "toy_digits"
    default_max_new_tokens = 6

    def docs(self, limit=None):
        docs = [{"question": f"Say some digits ({i})", "answer": ""} for i in range(16)]
        return docs[:limit] if limit else docs

    def doc_to_text(self, doc):
        return doc["question"]

    def doc_to_target(self, doc):
        return "123"

    def reference_output(self, doc):
        return "123"

    def evaluate(self, doc, output):
        text = "".join(output.split())
        return {"correct": bool(text) and text.isdigit(), "extracted": text}

    def reward(self, doc, output):
        text = "".join(output.split())
        return sum(c.isdigit() for c in text) / len(text) if text else 0.0


def rollout_source(
    model,
    tokenizer,
    task: Task,
    *,
    group_size=4,
    prompts_per_step=4,
    max_new_tokens=6,
    seed=0,
    ppo_epochs=1,
    ref_model=None,
    reward_cfg=None,
    temperature=1.0,
    drop_zero_signal=False,
):
    from infir.eval.generate import Generator
    from infir.rl.rewards import Rewarder
    from infir.rl.rollout import RolloutBatches, SamplingSettings

    docs = task.docs()
    prompts = Generator(model, tokenizer).encode(
        [task.build_prompt(d, chat=True, tokenizer=tokenizer) for d in docs]
    )
    settings = SamplingSettings(
        group_size=group_size, max_new_tokens=max_new_tokens, temperature=temperature, batch_size=64
    )
    return RolloutBatches(
        model,
        tokenizer,
        docs,
        prompts,
        Rewarder(task, reward_cfg),
        settings,
        prompts_per_step,
        seed,
        ppo_epochs=ppo_epochs,
        ref_model=ref_model,
        micro_batch_size=8,
        drop_zero_signal=drop_zero_signal,
    )


def load(path: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)
