"""Typed config of the eval stage (the `eval:` section of a recipe).

eval:
  tasks:
    - reasoning                                  # a bare name takes the task's defaults
    - {name: gsm8k, limit: 200, num_fewshot: 5, data_path: data/gsm8k}
    - {name: "rg:leg_counting", options: {n: 50}}
  batch_size: 16
  stages: null                                   # every completed one of pretrain/anneal/sft/rl
  chat: {sft: true, rl: true}                    # the others use base prompts
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from infir.config_base import Section
from infir.stages import chat_by_default, text_checkpoint_stages


def names_as_specs(value: Any) -> Any:
    """A task list may name tasks bare (`- gsm8k`) next to full specs; bare names become `{name: ...}`."""
    if isinstance(value, (list, tuple)):
        return [{"name": v} if isinstance(v, str) else v for v in value]
    return value


class TaskSpec(Section):
    name: str
    limit: int | None = Field(default=None, ge=1)
    num_fewshot: int | None = Field(default=None, ge=0, description="None: the task's default")
    data_path: str | None = Field(default=None, description="local file/folder or hub dataset name")
    max_new_tokens: int | None = Field(default=None, ge=1)
    num_samples: int = Field(default=1, ge=1, description="samples per prompt (pass@k for code tasks)")
    temperature: float = Field(default=0.0, ge=0.0, description="0 = greedy")
    options: dict[str, Any] = Field(default_factory=dict, description="task-specific keyword arguments")

    @field_validator("name")
    @classmethod
    def _known(cls, name: str) -> str:
        from infir.eval.registry import family_prefixes, task_names

        if name in task_names() or (":" in name and name.split(":", 1)[0] in family_prefixes()):
            return name
        raise ValueError(
            f"unknown task {name!r}; known: {task_names()} and families "
            f"{[p + ':<name>' for p in family_prefixes()]}"
        )

    @model_validator(mode="after")
    def _sampling_needs_temperature(self) -> "TaskSpec":
        if self.num_samples > 1 and self.temperature == 0:
            raise ValueError(
                f"task {self.name}: num_samples={self.num_samples} needs temperature > 0 "
                "(greedy samples are all the same)"
            )
        return self


class EvalConfig(Section):
    tasks: list[TaskSpec] = Field(default_factory=lambda: [TaskSpec(name="reasoning")])
    batch_size: int = Field(default=16, ge=1)
    stages: list[str] | None = Field(
        default=None, description="trained stages to evaluate; None: all completed"
    )
    chat: dict[str, bool] = Field(
        default_factory=dict, description="chat prompts per stage (default: sft, rl)"
    )
    show_samples: int = Field(default=3, ge=0, description="samples per task shown in the report")
    backend: Literal["hf", "vllm"] = "hf"
    device: str = "auto"
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    sandbox_workers: int = Field(default=2, ge=1, description="parallel sandboxes for code tasks")
    seed: int = 0

    @field_validator("tasks", mode="before")
    @classmethod
    def _names_as_specs(cls, value: Any) -> Any:
        return names_as_specs(value)

    @field_validator("stages")
    @classmethod
    def _trained_stages(cls, value: list[str] | None) -> list[str] | None:
        trained = text_checkpoint_stages()
        for stage in value or []:
            if stage not in trained:
                raise ValueError(f"eval.stages: {stage!r} is not a trained stage ({', '.join(trained)})")
        return value

    @field_validator("chat")
    @classmethod
    def _chat_stages(cls, value: dict[str, bool]) -> dict[str, bool]:
        trained = text_checkpoint_stages()
        unknown = sorted(set(value) - set(trained))
        if unknown:
            raise ValueError(f"eval.chat: unknown stage(s) {unknown}; use {', '.join(trained)}")
        return value

    def chat_for(self, stage: str) -> bool:
        return self.chat.get(stage, chat_by_default(stage))
