"""Typed configuration of `infir inputs` (the `inputs:` section of a recipe).

inputs:
  recall_seeds:
    math:
      positives: {sources: [{name: open-web-math/open-web-math}], size: 200000,
                  out: seeds/math_positive.jsonl}
      negatives: {sources: [{name: HuggingFaceFW/fineweb, subset: sample-10BT}], size: 200000,
                  out: seeds/math_negative.jsonl}
  annotate:
    sample: {sources: [{name: HuggingFaceFW/fineweb, subset: sample-10BT}], size: 450000,
             out: seeds/quality_annotations.jsonl}
    teacher: {type: openai, base_url: "http://127.0.0.1:8000/v1", model: meta-llama/Llama-3.1-70B-Instruct,
              api_key_env: TEACHER_API_KEY, concurrency: 64}
"""

from __future__ import annotations

import string
from pathlib import Path

from pydantic import Field, field_validator, model_validator

from infir.config_base import Section
from infir.synth.config import TeacherConfig

PROMPTS = Path(__file__).parent / "prompts"


class DatasetSource(Section):
    """Records read through Hugging Face `datasets`, streamed: a hub dataset by `name` (with `subset` and
    `split`), or local / fsspec `paths` (JSONL, JSON, Parquet; compressed JSONL too). The text is the
    `text_key` field, or `template` filled from the record's fields (Q&A rows: "{title}\\n\\n{question}
    \\n\\n{answer}"). `scan` caps the records read: the sample is uniform over those, so a corpus of
    billions of rows can be sampled without reading it all (`shuffle_files` takes them from files spread
    over the dataset)."""

    name: str | None = None
    paths: list[str] = Field(default_factory=list)
    subset: str | None = None
    split: str = "train"
    text_key: str = "text"
    template: str | None = None
    scan: int | None = Field(None, ge=1)
    # Read the dataset's files in a seeded random order (the sample's seed): with `scan`, the records read
    # come from files spread over the dataset, not only its first ones.
    shuffle_files: bool = False
    min_chars: int = Field(1, ge=1)  # shorter texts (empty pages) are skipped
    # Records with any of these fields empty are skipped: a question without its answer is no Q&A seed.
    require: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> DatasetSource:
        if bool(self.name) == bool(self.paths):
            raise ValueError("a dataset source needs exactly one of `name` (hub dataset) or `paths` (files)")
        if self.template is not None:
            try:
                self.fields()
            except ValueError as exc:
                raise ValueError(f"template {self.template!r} is not a format string: {exc}") from None
        return self

    def fields(self) -> list[str]:
        """The record fields the text is made of."""
        named = (
            [self.text_key]
            if self.template is None
            else [f for _, f, _, _ in string.Formatter().parse(self.template) if f]
        )
        return list(dict.fromkeys(named + self.require))

    @property
    def label(self) -> str:
        return self.name or ",".join(self.paths)


class SampleSpec(Section):
    """`size` records drawn uniformly (seeded) from the concatenated sources, written as JSONL to `out`."""

    sources: list[DatasetSource] = Field(min_length=1)
    size: int = Field(ge=1)
    out: str
    seed: int = 0

    def local_files(self) -> list[str]:
        """The local files the sources name, globs expanded (remote URLs are left out)."""
        import glob

        return [
            path
            for src in self.sources
            for pattern in src.paths
            if "://" not in pattern
            for path in sorted(glob.glob(pattern))
        ]


class RecallSeedsSpec(Section):
    positives: SampleSpec
    negatives: SampleSpec | None = None  # random web pages: what the domain is not


class AnnotateConfig(Section):
    """A sample of documents scored 0-5 by an OpenAI-compatible teacher. `prompt` names a packaged prompt
    (`prompts/<name>.yaml`) or a YAML file with `system` (optional), `user` (with `{text}`) and `score_regex`.
    Documents are cut to `max_chars` before they are sent (the prompt shows an extract), which bounds
    each request; the labels keep the whole text, as the classifier reads whole documents."""

    sample: SampleSpec
    teacher: TeacherConfig = Field(
        default_factory=lambda: TeacherConfig(
            type="openai",
            base_url="http://127.0.0.1:8000/v1",
            model="meta-llama/Llama-3.1-70B-Instruct",
            temperature=0.0,
            max_tokens=256,
        )
    )
    prompt: str = "fineweb_edu"
    max_chars: int = Field(6000, ge=100)
    batch: int = Field(1024, ge=1)  # documents per round of requests (and per write)

    @field_validator("teacher", mode="before")
    @classmethod
    def _greedy(cls, value):
        # a judge's score should not be a draw: greedy decoding and a short reply unless the recipe says so
        if isinstance(value, dict):
            value = {"temperature": 0.0, "max_tokens": 256, **value}
        return value

    @model_validator(mode="after")
    def _check(self) -> AnnotateConfig:
        if self.teacher.type != "openai":
            raise ValueError("annotation asks an OpenAI-compatible endpoint: `teacher.type: openai`")
        return self


class InputsConfig(Section):
    recall_seeds: dict[str, RecallSeedsSpec] = Field(default_factory=dict)
    annotate: AnnotateConfig | None = None

    def specs(self) -> list[tuple[str, SampleSpec]]:
        """Every sample to draw, named (`math.positives`, `annotate`)."""
        out = []
        for domain, spec in self.recall_seeds.items():
            out.append((f"{domain}.positives", spec.positives))
            if spec.negatives is not None:
                out.append((f"{domain}.negatives", spec.negatives))
        if self.annotate is not None:
            out.append(("annotate", self.annotate.sample))
        return out

    def input_files(self) -> list[str]:
        """Local files read (a prompt file too), whose size and mtime join the stage's fingerprint."""
        files = [path for _, spec in self.specs() for path in spec.local_files()]
        if self.annotate is not None and Path(self.annotate.prompt).is_file():
            files.append(self.annotate.prompt)
        return files

    def outputs(self) -> list[str]:
        return [spec.out for _, spec in self.specs()]

    @model_validator(mode="after")
    def _distinct_outputs(self) -> InputsConfig:
        outs = self.outputs()
        if len(set(outs)) != len(outs):
            twice = sorted({o for o in outs if outs.count(o) > 1})
            raise ValueError(f"two samples write the same file: {twice}")
        return self
