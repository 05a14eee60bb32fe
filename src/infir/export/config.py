"""Typed config of the export stage (the `export:` section of a recipe).

export:
  source: auto                  # trained stage (or model folder) to export; auto: the last completed
                                #   checkpoint stage (vl, rl, sft, anneal, pretrain)
  formats: [gguf, hf]           # gguf: one file per quant; hf: bf16 safetensors
  quants: [f16, q8_0, q4_0]
  bench:
    enabled: true
    task: reasoning             # accuracy change against the fp32 PyTorch model; null: speed only
    task_limit: 20
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from infir.config_base import Section


class EdgeBenchConfig(Section):
    enabled: bool = True
    prompt_tokens: int = Field(128, ge=1, description="prompt length for prompt-processing tokens/s")
    gen_tokens: int = Field(64, ge=2, description="greedy tokens per generation-speed run")
    repeats: int = Field(3, ge=1, description="timed runs per measurement; the median is reported")
    agreement_tokens: int = Field(32, ge=1, description="greedy tokens compared against the fp32 model")
    task: str | None = Field("reasoning", description="eval task for the accuracy change; null: none")
    task_limit: int | None = Field(20, ge=1)
    chat: bool | None = Field(None, description="chat prompts; None: when the source is sft or rl")
    int8: bool = Field(True, description="also measure PyTorch int8 dynamic quantization")
    threads: int | None = Field(None, ge=1, description="threads for both runtimes; None: torch's default")


class ExportConfig(Section):
    source: str = Field("auto", description="a trained stage name, a model folder, or auto")
    formats: list[Literal["gguf", "hf"]] = Field(default_factory=lambda: ["gguf", "hf"])
    quants: list[Literal["f16", "q8_0", "q4_0"]] = Field(default_factory=lambda: ["f16", "q8_0", "q4_0"])
    tokenizer_pre: str | None = Field(None, description="llama.cpp pre-tokenizer name; None: detected")
    bench: EdgeBenchConfig = Field(default_factory=EdgeBenchConfig)

    @field_validator("formats", "quants")
    @classmethod
    def _distinct(cls, values: list[str]) -> list[str]:
        if len(set(values)) != len(values):
            raise ValueError(f"duplicates in {values}")
        return values
