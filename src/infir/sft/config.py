"""SFT configs: the shared trainer's fields plus where conversations come from."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from infir.config_base import Section
from infir.train.config import ScheduleConfig, TrainConfig


class ConversationSource(Section):
    """`jsonl`: a file of records in `messages` (or ShareGPT `conversations`) form; `hf`: a dataset by
    name; `generated`: step-by-step math problems (train split) from `infir.data.reasoning`;
    `synth`: the output of this run's `synth` stage."""

    type: Literal["jsonl", "hf", "generated", "synth"]
    path: str | None = None
    name: str | None = None
    subset: str | None = None  # Hugging Face dataset config
    split: str = "train"
    limit: int | None = Field(None, ge=1)
    families: list[str] = Field(default_factory=list)
    per_family: int = Field(1000, ge=1)
    seed: int = 0
    system_prompt: str | None = None

    @model_validator(mode="after")
    def _check(self) -> "ConversationSource":
        needs = {"jsonl": "path", "hf": "name"}.get(self.type)
        if needs and getattr(self, needs) is None:
            raise ValueError(f"a {self.type} source needs `{needs}`")
        if self.type == "generated" and not self.families:
            raise ValueError("a generated source needs `families`")
        return self


class SFTConfig(TrainConfig):
    init_from: str | None = "auto"  # auto: the last completed training stage before sft
    max_steps: int | None = None  # None: derived from epochs
    epochs: float = Field(1.0, gt=0)
    data_mix: str = "sft"
    data: list[ConversationSource] = Field(default_factory=list)
    on_bad_record: Literal["fail", "drop"] = "fail"
    packing: bool = True
    max_conversation_tokens: int | None = None  # longer ones are dropped and counted; None: seq_len
    schedule: ScheduleConfig = Field(
        default_factory=lambda: ScheduleConfig(kind="cosine", warmup_ratio=0.1, min_lr_ratio=0.0)
    )
