"""Rollouts: the batch source of an RL run. Each trainer step gets a group batch built on the spot:

  prompts  `prompts_per_step` documents, in an order that is a pure function of (seed, rollout index)
  samples  `group_size` completions each from the current policy (HF generator or vLLM), seeded by
           (seed, rollout index), so a resumed run draws the very same completions
  rewards  `Rewarder` (Task.reward + format + reference steps), then group-relative advantages
  rows     prompt + completion (+ the end-of-turn token when the model stopped there), right-padded;
           labels mark the completion tokens only

With `guidance`, each group also holds its prompt's worked solution as an off-policy member (scored and
advantaged like a sample, left out of the logged rewards).

With `drop_zero_signal`, groups whose completions all got the same reward (advantage 0 everywhere, so
no policy gradient) leave the batch before any forward pass; a step where every group is such keeps
one group so the trainer still takes a (null) step. Rewards are logged over all completions.

With `sft_coef` > 0, each prompt's worked solution is also a row of its own with that constant advantage
on every token: under the surrogate (ratio 1) its gradient is `sft_coef` times the supervised loss's, so
the step mixes the policy gradient with imitation of verified solutions (PPO-ptx, Ouyang et al. 2022;
SRFT, Fu et al. 2025). These rows are trained whatever their group's rewards.

With `ppo_epochs` > 1 the same rollout feeds that many optimizer steps, with the rollout policy's
log-probs kept as `old_logprobs`; a checkpoint taken between them stores the rollout itself.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from infir.eval.generate import Generation, Generator, eos_token_ids
from infir.rl.grpo import group_advantages, process_advantages, sequence_logprobs
from infir.rl.rewards import Rewarder
from infir.rl.solution_steps import step_rewards


@dataclass(frozen=True)
class SamplingSettings:
    group_size: int
    max_new_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    stop: tuple[str, ...] = ()
    batch_size: int = 64  # rows decoded together (HF engine)


class HFEngine:
    """Samples from the policy being trained, in place, with infir's batched KV-cache generator."""

    def __init__(self, model, tokenizer, autocast=None):
        self.model, self.tokenizer, self.autocast = model, tokenizer, autocast
        self._generator: Generator | None = None

    @property
    def generator(self) -> Generator:
        if self._generator is None:  # built once the trainer has put the model on its device
            self._generator = Generator(self.model, self.tokenizer)
        return self._generator

    def sync(self, model) -> None:
        """Nothing to copy: the generator runs the trained module itself."""

    def generate(self, prompts: list[list[int]], settings: SamplingSettings, seed: int) -> list[Generation]:
        was_training = self.model.training
        self.model.eval()
        try:
            with self.autocast if self.autocast is not None else contextlib.nullcontext():
                return self.generator.generate(
                    prompts,
                    max_new_tokens=settings.max_new_tokens,
                    stop=list(settings.stop),
                    temperature=settings.temperature,
                    top_p=settings.top_p,
                    top_k=settings.top_k,
                    num_samples=settings.group_size,
                    seed=seed,
                    batch_size=settings.batch_size,
                    return_token_ids=True,
                )
        finally:
            self.model.train(was_training)


def _load_weights(worker, weights) -> None:
    # Runs inside vLLM's worker (in this process): vLLM's model maps HF parameter names itself.
    worker.model_runner.model.load_weights(weights=weights)


class VLLMEngine:
    """vLLM on the training GPU: the engine starts from the initial checkpoint and receives the
    policy's weights before every rollout. The engine is kept in this process so the weights pass by
    reference, and it takes only `gpu_memory_utilization` of the card, leaving the rest to training."""

    def __init__(self, model_path: str, max_model_len: int, gpu_memory_utilization: float = 0.3):
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        from infir.eval.backends import VLLMBackend

        # Our checkpoints are fp32; vLLM's attention kernels want half precision.
        dtype = "bfloat16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "float16"
        self.backend = VLLMBackend(
            model_path,
            dtype=dtype,
            gpu_memory_utilization=gpu_memory_utilization,
            max_model_len=max_model_len,
        )

    def sync(self, model) -> None:
        weights = [(name, tensor.detach()) for name, tensor in model.state_dict().items()]
        self.backend.llm.collective_rpc(_load_weights, args=(weights,))
        with contextlib.suppress(AttributeError):  # cached prefixes were computed with the old weights
            self.backend.llm.reset_prefix_cache()

    def generate(self, prompts: list[list[int]], settings: SamplingSettings, seed: int) -> list[Generation]:
        return self.backend.generate(
            [{"prompt_token_ids": ids} for ids in prompts],
            max_new_tokens=settings.max_new_tokens,
            stop=list(settings.stop),
            temperature=settings.temperature,
            top_p=settings.top_p,
            top_k=settings.top_k,
            num_samples=settings.group_size,
            seed=seed,
            return_token_ids=True,
        )


def rollout_seed(seed: int, index: int) -> int:
    """A sampling seed per rollout, independent of every other rollout's."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


class RolloutBatches:
    """The trainer's batch source for GRPO (see the module docstring)."""

    def __init__(
        self,
        policy,
        tokenizer,
        docs: Sequence[dict],
        prompt_ids: Sequence[list[int]],
        rewarder: Rewarder,
        settings: SamplingSettings,
        prompts_per_step: int,
        seed: int,
        engine=None,
        advantage: str = "grpo",
        ppo_epochs: int = 1,
        ref_model=None,
        micro_batch_size: int = 16,
        autocast=None,
        log=print,
        drop_zero_signal: bool = False,
        negative_weight: float = 1.0,
        guidance: bool = False,
        sft_coef: float = 0.0,
    ):
        if not docs or len(docs) != len(prompt_ids):
            raise ValueError(f"RL needs prompts: got {len(docs)} docs and {len(prompt_ids)} encoded prompts")
        self.policy, self.tokenizer, self.docs, self.prompt_ids = (
            policy,
            tokenizer,
            list(docs),
            list(prompt_ids),
        )
        self.rewarder, self.settings, self.prompts_per_step, self.seed = (
            rewarder,
            settings,
            prompts_per_step,
            seed,
        )
        self.engine = engine if engine is not None else HFEngine(policy, tokenizer, autocast)
        self.advantage, self.ppo_epochs, self.ref_model = advantage, ppo_epochs, ref_model
        # process and process_step judge each step of a completion against the reference solution
        self.per_step = advantage in ("process", "process_step")
        self.micro_batch_size, self.autocast, self.log = micro_batch_size, autocast, log
        self.drop_zero_signal, self.negative_weight = drop_zero_signal, negative_weight
        self.guidance, self.sft_coef = guidance, sft_coef
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.pad_id = int(pad if pad is not None else 0)
        self.eos_ids = eos_token_ids(policy, tokenizer)
        self.end_id = (
            tokenizer.eos_token_id if tokenizer.eos_token_id is not None else min(self.eos_ids, default=None)
        )
        self.step = 0
        self._cached: tuple[int, dict] | None = None  # (rollout index, batch) while ppo_epochs reuse it

    # -- prompt order ----------------------------------------------------------------------------
    def prompt_indices(self, index: int) -> list[int]:
        """Documents of rollout `index`: consecutive slots of a per-epoch permutation seeded by (seed, epoch)."""
        out, perms = [], {}
        for position in range(index * self.prompts_per_step, (index + 1) * self.prompts_per_step):
            epoch, offset = divmod(position, len(self.docs))
            if epoch not in perms:
                perms[epoch] = np.random.default_rng([self.seed, epoch]).permutation(len(self.docs))
            out.append(int(perms[epoch][offset]))
        return out

    # -- one rollout -----------------------------------------------------------------------------
    def rollout(self, index: int) -> dict:
        chosen = self.prompt_indices(index)
        t0 = time.perf_counter()
        self.engine.sync(self.policy)
        gens = self.engine.generate(
            [self.prompt_ids[i] for i in chosen], self.settings, rollout_seed(self.seed, index)
        )
        gen_seconds = time.perf_counter() - t0
        sampled = self.settings.group_size
        sampled_docs = [self.docs[i] for i in chosen for _ in range(sampled)]
        sampled_rewards = self.rewarder.score_many(sampled_docs, [g.text for g in gens])
        rows = [
            (self.prompt_ids[i], self._completion(g))
            for i, g in zip([i for i in chosen for _ in range(sampled)], gens)
        ]
        docs, rewards, group = sampled_docs, sampled_rewards, sampled
        if self.guidance:
            docs, rows, rewards, group = self._with_references(chosen, docs, rows, rewards)
        totals = torch.tensor([r.total for r in rewards])
        if self.per_step:
            advantages = self._process_advantages(docs, rows, rewards, group)
            # a group carries signal when some token of some completion has a non-zero advantage
            signal = [any(any(a) for a in advantages[g : g + group]) for g in range(0, len(rows), group)]
            keep = self._rows_of(signal, group) if self.drop_zero_signal else list(range(len(rows)))
        else:
            advantages = group_advantages(
                totals, group, scale=self.advantage == "grpo", negative_weight=self.negative_weight
            )
            keep = self._kept_rows(totals, group) if self.drop_zero_signal else list(range(len(rows)))
        trained = [rows[r] for r in keep]
        supervised = (
            [(self.prompt_ids[i], self._reference_tokens(i)) for i in chosen] if self.sft_coef > 0 else []
        )
        batch = self._tensors(trained + supervised)
        if self.per_step:
            batch["advantages"] = self._token_layout(
                trained + supervised,
                [advantages[r] for r in keep] + [[self.sft_coef] * len(c) for _, c in supervised],
                batch["labels"].size(1),
            )
        else:
            batch["advantages"] = torch.cat(
                [advantages[keep].float(), torch.full((len(supervised),), float(self.sft_coef))]
            )
        if self.ref_model is not None:
            batch["ref_logprobs"] = sequence_logprobs(
                self.ref_model, batch, self.micro_batch_size, self.autocast, self.settings.temperature
            )
        if self.ppo_epochs > 1:
            batch["old_logprobs"] = sequence_logprobs(
                self.policy, batch, self.micro_batch_size, self.autocast, self.settings.temperature
            )
        # The logged rewards are the policy's own samples only, references excluded.
        batch["metrics"] = self._metrics(
            torch.tensor([r.total for r in sampled_rewards]),
            sampled_rewards,
            gens,
            sampled,
            gen_seconds,
            time.perf_counter() - t0,
        )
        batch["metrics"]["trained_rows"] = len(keep)
        if supervised:
            batch["metrics"]["supervised_rows"] = len(supervised)
        return batch

    def _with_references(self, chosen, docs, rows, rewards):
        """Each prompt's group gains its doc's worked solution as one more, off-policy member.

        Off-policy guidance (LUFFY, Yan et al. 2025): when every sample of a group fails, the reference
        is the only above-average member and gets the whole push; when the samples already succeed, it
        is one right answer among many and carries little. Docs without a solution are refused.
        """
        group = self.settings.group_size
        out_docs, out_rows, out_rewards = [], [], []
        for k, i in enumerate(chosen):
            doc = self.docs[i]
            span = slice(k * group, (k + 1) * group)
            out_docs += docs[span] + [doc]
            out_rows += rows[span] + [(self.prompt_ids[i], self._reference_tokens(i))]
            out_rewards += rewards[span] + self.rewarder.score_many([doc], [str(doc["solution"])])
        return out_docs, out_rows, out_rewards, group + 1

    def _reference_tokens(self, i: int) -> list[int]:
        """Prompt `i`'s worked solution as a completion: its tokens, then the end-of-turn token."""
        solution = str(self.docs[i].get("solution") or "")
        if not solution:
            raise ValueError(
                f"rl: prompt {i} has no worked `solution` (rl.guidance and rl.sft_coef need one)"
            )
        reference = self.tokenizer(solution, add_special_tokens=False)["input_ids"]
        return reference + [self.end_id] if self.end_id is not None else reference

    @staticmethod
    def _kept_rows(totals: torch.Tensor, group: int) -> list[int]:
        grouped = totals.view(-1, group)
        return RolloutBatches._rows_of((grouped.max(1).values != grouped.min(1).values).tolist(), group)

    @staticmethod
    def _rows_of(signal: list[bool], group: int) -> list[int]:
        """Rows of the groups that carry signal; the first group alone when none does (a null step)."""
        groups = [g for g, s in enumerate(signal) if s] or [0]
        return [g * group + k for g in groups for k in range(group)]

    def _process_advantages(self, docs, rows, rewards, group) -> list[list[float]]:
        """Per-token advantages of each completion from its steps against the doc's reference solution."""
        steps = [
            step_rewards(
                str(doc.get("solution") or ""),
                [self.tokenizer.decode([t], skip_special_tokens=True) for t in completion],
                reward.correct >= 1.0,
            )
            for doc, (_, completion), reward in zip(docs, rows, rewards)
        ]
        adv = process_advantages(steps, group, cumulative=self.advantage == "process")
        return [[a * (self.negative_weight if a < 0 else 1.0) for a in row] for row in adv]

    @staticmethod
    def _token_layout(rows, advantages, width: int) -> torch.Tensor:
        """Completion-token advantages placed where `token_logprobs` scores those tokens (B, width - 1)."""
        out = torch.zeros(len(rows), width - 1)
        for r, ((prompt, _), adv) in enumerate(zip(rows, advantages)):
            if adv:
                out[r, len(prompt) - 1 : len(prompt) - 1 + len(adv)] = torch.tensor(adv)
        return out

    def _completion(self, gen: Generation) -> list[int]:
        ids = list(gen.token_ids or [])
        # The HF generator drops the end-of-turn token it stopped at; the policy must be credited
        # (or blamed) for choosing to stop, so the row keeps it.
        if (
            gen.finish_reason == "eos"
            and self.end_id is not None
            and (not ids or ids[-1] not in self.eos_ids)
        ):
            ids.append(self.end_id)
        return ids

    def _tensors(self, rows: list[tuple[list[int], list[int]]]) -> dict:
        width = max(len(p) + len(c) for p, c in rows)
        input_ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        labels = torch.full((len(rows), width), -100, dtype=torch.long)
        for r, (prompt, completion) in enumerate(rows):
            seq = torch.tensor(prompt + completion, dtype=torch.long)
            input_ids[r, : len(seq)] = seq
            labels[r, len(prompt) : len(seq)] = seq[len(prompt) :]
        # Right padding: causal attention never lets a real token see the padding after it.
        position_ids = torch.arange(width).expand(len(rows), width).clone()
        return {"input_ids": input_ids, "labels": labels, "position_ids": position_ids}

    def _metrics(self, totals, rewards, gens, group, gen_seconds, seconds) -> dict:
        grouped = totals.view(-1, group)
        new_tokens = sum(g.new_tokens for g in gens)
        return {
            "reward": round(float(totals.mean()), 6),
            "reward_std": round(float(totals.std()) if totals.numel() > 1 else 0.0, 6),
            "accuracy": round(sum(r.correct >= 1.0 for r in rewards) / len(rewards), 6),
            "format": round(sum(r.formatted for r in rewards) / len(rewards), 6),
            "steps_followed": round(
                sum(r.steps_matched for r in rewards) / max(1, sum(r.reference_steps for r in rewards)), 6
            ),
            "completion_tokens": round(new_tokens / len(gens), 2),
            "truncated": round(sum(g.finish_reason == "length" for g in gens) / len(gens), 6),
            "zero_signal_groups": round(
                float((grouped.max(1).values == grouped.min(1).values).float().mean()), 6
            ),
            "rollout_s": round(seconds, 3),
            "gen_tokens_per_s": round(new_tokens / gen_seconds, 1) if gen_seconds > 0 else 0.0,
        }

    # -- the trainer's batch-source protocol -----------------------------------------------------
    def batch_at(self, step: int) -> dict:
        index = step // self.ppo_epochs
        if self._cached is None or self._cached[0] != index:
            self._cached = (index, self.rollout(index))
        return self._cached[1]

    def __iter__(self):
        while True:
            batch = self.batch_at(self.step)
            self.step += 1
            yield batch

    def state_dict(self) -> dict:
        state = {"step": self.step, "seed": self.seed, "prompts": len(self.docs)}
        # A checkpoint between the optimizer steps of one rollout keeps that rollout: its completions
        # came from weights that no longer exist.
        if (
            self._cached is not None
            and self._cached[0] == self.step // self.ppo_epochs
            and self.step % self.ppo_epochs
        ):
            state["cached"] = {"index": self._cached[0], "batch": self._cached[1]}
        return state

    def load_state_dict(self, state: dict) -> None:
        if state.get("seed") != self.seed or state.get("prompts") != len(self.docs):
            raise ValueError(
                f"RL prompts changed since the checkpoint (seed {state.get('seed')} -> {self.seed}, "
                f"{state.get('prompts')} -> {len(self.docs)} prompts); cannot resume exactly"
            )
        self.step = int(state["step"])
        cached = state.get("cached")
        self._cached = (int(cached["index"]), cached["batch"]) if cached else None
