"""The `rl` stage: GRPO with verifiable rewards on the shared trainer, starting from the SFT model.

Reads as: policy (+ frozen reference) -> task and train-split prompts -> rollout batch source ->
fit(objective=GRPO), the one training entry point. Precision, accumulation, clipping, the schedule, metrics.jsonl,
atomic checkpoints and exact resume are the trainer's; the final model lands in `<stage_dir>/final`
with the SFT model's tokenizer and end-of-turn settings.
"""

from __future__ import annotations

import contextlib

from infir.rl.config import PromptConfig, RLConfig
from infir.run import StageContext


def prompt_docs(cfg: PromptConfig, task_name: str, task_options: dict) -> list[dict]:
    """RL prompts: generated train-split problems, or a task's documents from a named non-eval split."""
    from infir.eval.registry import get_task

    if cfg.source == "generated":
        from infir.data.reasoning import generate

        docs = [
            p.to_dict()
            for family in cfg.families
            for p in generate(
                family, cfg.per_family, cfg.seed, split="train", heldout_fraction=cfg.heldout_fraction
            )
        ]
    else:
        if task_name.split(":")[0] == "reasoning":
            raise ValueError(
                "rl.prompts: the `reasoning` task's documents are the held-out problems it "
                "evaluates on; use `source: generated` for train-split problems"
            )
        task = get_task(task_name, split=cfg.split, **task_options)
        if cfg.split == task.eval_split:
            raise ValueError(
                f"rl.prompts.split {cfg.split!r} is the split {task_name} is evaluated on; "
                "RL would train on the test set"
            )
        docs = task.docs()
    return docs[: cfg.limit] if cfg.limit else docs


def eval_prompt_texts(ctx: StageContext, task) -> set[str]:
    """Prompts of the recipe's eval tasks of the same kind as `task` (RL must not train on them)."""
    from infir.eval.runner import build_task

    texts: set[str] = set()
    for spec in ctx.recipe.eval.tasks if "eval" in ctx.recipe.stages else []:
        other = build_task(spec)
        if type(other) is type(task):
            texts.update(other.doc_to_text(d) for d in other.docs(spec.limit))
    return texts


def build_prompts(ctx: StageContext, cfg: RLConfig, task, tokenizer, policy, chat: bool):
    """(docs, prompt token ids, counts): prompts too long for seq_len and eval overlaps are dropped."""
    from infir.eval.generate import Generator

    docs = prompt_docs(cfg.prompts, cfg.task, cfg.task_options)
    banned = eval_prompt_texts(ctx, task)
    kept = [d for d in docs if task.doc_to_text(d) not in banned]
    texts = [
        task.build_prompt(d, num_fewshot=cfg.prompts.num_fewshot, chat=chat, tokenizer=tokenizer)
        for d in kept
    ]
    encoded = Generator(policy, tokenizer).encode(texts)
    budget = cfg.seq_len - cfg.max_new_tokens
    pairs = [(d, ids) for d, ids in zip(kept, encoded) if len(ids) <= budget]
    counts = {
        "prompts": len(pairs),
        "generated": len(docs),
        "dropped_eval_overlap": len(docs) - len(kept),
        "dropped_too_long": len(kept) - len(pairs),
    }
    if not pairs:
        raise ValueError(f"rl: no usable prompts ({counts}); raise seq_len or check rl.prompts")
    return [d for d, _ in pairs], [ids for _, ids in pairs], counts


def unsolved_prompts(docs, prompt_ids, engine, rewarder, settings) -> tuple[list, list, int]:
    """The prompts the policy answers wrong under greedy decoding (no sampling: the RNG is untouched)."""
    from dataclasses import replace

    greedy = replace(settings, group_size=1, temperature=0.0)
    outputs = [g.text for g in engine.generate(prompt_ids, greedy, seed=0)]
    rewards = rewarder.score_many(docs, outputs)
    keep = [i for i, r in enumerate(rewards) if r.correct < 1.0]
    return [docs[i] for i in keep], [prompt_ids[i] for i in keep], len(docs) - len(keep)


def _autocast(precision: str, device):
    import torch

    return (
        torch.autocast(device.type, dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()
    )


def _engine(cfg: RLConfig, model_path: str, policy, tokenizer, autocast):
    from infir.rl.rollout import HFEngine, VLLMEngine

    if cfg.backend == "vllm":
        return VLLMEngine(
            model_path, max_model_len=cfg.seq_len, gpu_memory_utilization=cfg.vllm_gpu_memory_utilization
        )
    return HFEngine(policy, tokenizer, autocast)


def run(ctx: StageContext) -> dict:
    from transformers import AutoTokenizer

    from infir.eval.registry import get_task
    from infir.rl.grpo import GRPOObjective
    from infir.rl.rewards import Rewarder
    from infir.rl.rollout import RolloutBatches, SamplingSettings
    from infir.train.config import resolve_precision
    from infir.train.parallel import init_distributed
    from infir.stages import resolve_start
    from infir.run import MetricsLog
    from infir.train.fit import fit, initial_model

    cfg: RLConfig = ctx.recipe.rl
    # One process: under torchrun the stage runs on rank 0 while the others wait (rollouts decode token
    # by token, which sharded weights would turn into a collective per token).
    info = init_distributed(ctx.recipe.runtime.device)
    model_path = resolve_start(ctx) or ctx.recipe.model.name_or_path
    if model_path is None:
        raise ValueError(
            "rl: nothing to start from (set rl.init_from to a stage of this run or a checkpoint)"
        )
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    policy = initial_model(ctx, tokenizer, str(model_path)).to(info.device)
    chat = cfg.chat if cfg.chat is not None else bool(getattr(tokenizer, "chat_template", None))
    task = get_task(cfg.task, **cfg.task_options)
    docs, prompt_ids, counts = build_prompts(ctx, cfg, task, tokenizer, policy, chat)
    precision = resolve_precision(cfg.precision, info.device)
    autocast = _autocast(precision, info.device)
    ref_model = None
    if cfg.kl_coef > 0:
        ref_model = (
            initial_model(ctx, tokenizer, str(model_path)).to(info.device).eval().requires_grad_(False)
        )
    settings = SamplingSettings(
        group_size=cfg.group_size,
        max_new_tokens=cfg.max_new_tokens,
        temperature=cfg.temperature,
        top_p=cfg.top_p,
        top_k=cfg.top_k,
        stop=tuple(task.stops(chat)),
        batch_size=cfg.rollout_batch_size,
    )
    engine = _engine(cfg, model_path, policy, tokenizer, autocast)
    rewarder = Rewarder(task, cfg.reward)
    if cfg.prompts.keep == "unsolved":
        docs, prompt_ids, counts["dropped_solved"] = unsolved_prompts(
            docs, prompt_ids, engine, rewarder, settings
        )
        counts["prompts"] = len(docs)
        if not docs:
            raise ValueError("rl: the starting policy solves every prompt; nothing is left to train on")
    source = RolloutBatches(
        policy,
        tokenizer,
        docs,
        prompt_ids,
        rewarder,
        settings,
        cfg.prompts_per_step,
        ctx.recipe.seed,
        engine=engine,
        advantage=cfg.advantage,
        ppo_epochs=cfg.ppo_epochs,
        ref_model=ref_model,
        micro_batch_size=cfg.micro_batch_size,
        autocast=autocast,
        drop_zero_signal=cfg.drop_zero_signal,
        negative_weight=cfg.negative_weight,
        guidance=cfg.guidance,
        sft_coef=cfg.sft_coef,
    )
    objective = GRPOObjective(
        cfg.clip_eps,
        cfg.clip_high,
        cfg.kl_coef,
        cfg.loss_aggregation,
        cfg.max_new_tokens,
        temperature=cfg.temperature,
    )
    # No seed: RL runs on the RNG state building the policy left (initial_model seeds it); seeding again
    # here would change its rollouts.
    summary = fit(cfg, policy, tokenizer, source, ctx.stage_dir, info, objective=objective)
    summary.update(
        {
            "init_from": str(model_path),
            "task": cfg.task,
            "chat": chat,
            "backend": cfg.backend,
            **counts,
            **reward_curve_summary(MetricsLog(ctx.stage_dir / "metrics.jsonl").read()),
        }
    )
    return summary


def reward_curve_summary(records: list[dict], window: int = 10) -> dict:
    """Mean reward and rollout accuracy over the first and the last `window` logged steps."""
    rows = [r for r in records if "reward" in r]
    if not rows:
        return {}
    head, tail = rows[:window], rows[-window:]

    def mean(part, key):
        return round(sum(r[key] for r in part) / len(part), 4)

    return {
        "reward_first": mean(head, "reward"),
        "reward_last": mean(tail, "reward"),
        "accuracy_first": mean(head, "accuracy"),
        "accuracy_last": mean(tail, "accuracy"),
        "curve_window": len(head),
    }
