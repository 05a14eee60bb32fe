"""The `rl:` section: the shared trainer's fields plus rollouts, rewards and the GRPO objective.

rl:
  init_from: auto               # auto: the last training stage before rl; or a stage, a path, a Hub name
  task: reasoning               # Task.reward judges completions (math-verify, the code sandbox, ...)
  prompts: {source: generated, families: [chain_sum], per_family: 2000}   # train split only
  group_size: 8                 # G completions per prompt
  prompts_per_step: 8           # global batch = prompts_per_step * group_size sequences
  max_new_tokens: 96
  temperature: 1.0
  kl_coef: 0.0                  # > 0 loads a frozen reference model (k3 estimator)
  reward: {correct: 1.0, format: 0.1}
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from infir.config_base import Section
from infir.data.reasoning import DEFAULT_FAMILIES, HELDOUT_FRACTION
from infir.train.config import OptimizerConfig, ScheduleConfig, TrainConfig

# "The answer is 42." as the last sentence of the completion: the form the reasoning task reads.
DEFAULT_FORMAT = r"The answer is -?[\d,]*\.?\d+\.?$"


class PromptConfig(Section):
    """Where RL prompts come from. `generated`: problems of `infir.data.reasoning` from the TRAIN split
    (the held-out split is what the `reasoning` task evaluates on); `task`: the task's own documents
    from `split` (e.g. gsm8k's train split), never its evaluation split unless asked for by name."""

    source: Literal["generated", "task"] = "generated"
    families: list[str] = Field(default_factory=lambda: list(DEFAULT_FAMILIES))
    per_family: int = Field(2000, ge=1)
    seed: int = 0
    heldout_fraction: float = Field(HELDOUT_FRACTION, gt=0, lt=1)  # the eval task's, so the splits agree
    split: str = "train"
    limit: int | None = Field(None, ge=1)
    num_fewshot: int = Field(0, ge=0)
    # unsolved: before training, the starting policy answers every prompt greedily and only the prompts it
    # gets wrong are kept (offline difficulty filtering). Prompts it already solves add no greedy accuracy
    # and, when all samples agree, no gradient.
    keep: Literal["all", "unsolved"] = "all"


class RewardConfig(Section):
    """Reward = correct * Task.reward(doc, output) + format * [output matches `format_pattern`]
    + steps * (share of the doc's reference solution steps that the output writes first, in order;
    0 for docs without a `solution`). See `infir.rl.solution_steps`."""

    correct: float = 1.0
    format: float = 0.0
    steps: float = 0.0
    format_pattern: str = DEFAULT_FORMAT  # searched in the stripped output (re.search, multiline off)
    workers: int = Field(1, ge=1)  # threads judging outputs (code rewards wait on sandbox processes)


class RLConfig(TrainConfig):
    init_from: str | None = "auto"
    task: str = "reasoning"
    task_options: dict[str, Any] = Field(default_factory=dict)
    prompts: PromptConfig = Field(default_factory=PromptConfig)
    reward: RewardConfig = Field(default_factory=RewardConfig)
    chat: bool | None = None  # None: chat prompts when the tokenizer has a chat template
    # Rollouts
    group_size: int = Field(8, ge=2)
    prompts_per_step: int = Field(8, ge=1)
    global_batch_size: int | None = None  # derived: prompts_per_step * group_size
    micro_batch_size: int = Field(16, ge=1)
    seq_len: int = Field(512, ge=8)  # prompt + completion; longer prompts are dropped from the pool
    max_new_tokens: int = Field(128, ge=1)
    temperature: float = Field(1.0, gt=0)
    top_p: float = Field(1.0, gt=0, le=1)
    top_k: int = Field(0, ge=0)
    rollout_batch_size: int = Field(64, ge=1)  # rows the HF generator decodes together
    backend: Literal["hf", "vllm"] = "hf"
    vllm_gpu_memory_utilization: float = Field(0.3, gt=0, lt=1)  # the rest stays for training
    # GRPO
    # grpo: (r - mean(group)) / std; dr_grpo: r - mean(group), no division by the std; process: per-step
    # rewards against the doc's reference solution, per-token advantages (DeepSeekMath's process
    # supervision; see `infir.rl.solution_steps`), for prompts whose docs carry a worked `solution`;
    # process_step: the same steps, each token credited with its own step's reward only (no sum of later ones).
    advantage: Literal["grpo", "dr_grpo", "process", "process_step"] = "grpo"
    loss_aggregation: Literal["token", "sequence", "constant"] = "token"
    clip_eps: float = Field(0.2, gt=0, lt=1)
    clip_eps_high: float | None = Field(None, gt=0)  # DAPO's clip-higher; None: clip_eps
    kl_coef: float = Field(0.0, ge=0)
    # Scale of the below-average completions' (negative) advantages: 1 is GRPO; 0 only pulls the policy
    # towards its above-average samples. On a small model the push-down of whole wrong completions also
    # unlearns the right tokens in them (copied operands, the answer sentence).
    negative_weight: float = Field(1.0, ge=0, le=1)
    # Off-policy guidance (LUFFY): each group also holds its prompt's worked solution, scored like a
    # sample; it carries the push where the policy's own samples fail. Needs docs with a `solution`.
    guidance: bool = False
    # > 0: each prompt's worked solution is also trained with the supervised loss at this weight per
    # token, beside the policy gradient (PPO-ptx, Ouyang et al. 2022; SRFT, Fu et al. 2025). Needs docs
    # with a `solution`.
    sft_coef: float = Field(0.0, ge=0)
    ppo_epochs: int = Field(1, ge=1)  # optimizer steps per rollout batch
    # Groups with one reward for all completions carry no policy gradient: skip their forward/backward
    # (the token mean then runs over informative completions only, as in DAPO).
    drop_zero_signal: bool = True
    # Trainer defaults suited to RL: small steps from the SFT model, no decay pulling weights to zero.
    log_every: int = Field(1, ge=1)
    val_batches: int = Field(0, ge=0)
    optimizer: OptimizerConfig = Field(default_factory=lambda: OptimizerConfig(lr=1e-6, weight_decay=0.0))
    schedule: ScheduleConfig = Field(default_factory=lambda: ScheduleConfig(kind="constant", warmup_steps=0))

    @model_validator(mode="before")
    @classmethod
    def _derive_batch(cls, data: Any) -> Any:
        if isinstance(data, dict):
            group = data.get("group_size", cls.model_fields["group_size"].default)
            prompts = data.get("prompts_per_step", cls.model_fields["prompts_per_step"].default)
            derived = int(group) * int(prompts)
            given = data.get("global_batch_size")
            if given is not None and int(given) != derived:
                raise ValueError(
                    f"rl: global_batch_size ({given}) must equal prompts_per_step * group_size "
                    f"({derived}); leave it out to derive it"
                )
            data = {**data, "global_batch_size": derived}
        return data

    @model_validator(mode="after")
    def _check_rl(self) -> RLConfig:
        if self.max_new_tokens >= self.seq_len:
            raise ValueError(
                f"rl: max_new_tokens ({self.max_new_tokens}) leaves no room for the prompt in "
                f"seq_len ({self.seq_len})"
            )
        return self

    @property
    def clip_high(self) -> float:
        return self.clip_eps if self.clip_eps_high is None else self.clip_eps_high
