"""The `vl:` section: model parts, the image-text filter, the four curriculum stages and their evaluation.

vl:
  vision: {name_or_path: google/siglip-so400m-patch14-384}    # or a tiny shape, or `filter`
  language_model: auto          # <run-dir>/sft/final when the run has it, else a fresh `lm`
  stages:
    - name: alignment
      trains: [projector]       # module_lr 0 for every other part (per-module LRs, 0 = frozen)
      data: [{type: llava_json, path: ..., filter: true}]
      train: {max_steps: ..., optimizer: {lr: 1e-3}}
    - ...
    - name: instruction
      replay: {perception: 0.25}  # a quarter of the mix: perception's own data, so its skills stay trained
  eval: {tasks: [vl_vqa, vl_ocr, vl_gui, vl_math]}
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from infir.config_base import Section
from infir.eval.config import TaskSpec, names_as_specs
from infir.model.llm import ModelConfig
from infir.model.projector import ProjectorConfig
from infir.model.vision import VisionConfig
from infir.model.vlm import MODULE_PREFIXES
from infir.tokenize.config import TokenizerConfig
from infir.train.config import OptimizerConfig, ScheduleConfig, TrainConfig

Part = Literal["vision", "projector", "language"]
# Which QA of each generator is the image's caption (the text an image-text pair holds).
CAPTION_KINDS = {"shapes": "caption", "charts": "chart_table", "text": "ocr", "gui": "gui_describe"}


class DualEncoderConfig(Section):
    """The tiny SigLIP trained when `filter.model` is not given (its vision shape is `vl.vision`'s)."""

    text_hidden_size: int = Field(128, ge=8)
    text_layers: int = Field(2, ge=1)
    text_heads: int = Field(4, ge=1)
    max_text_tokens: int = Field(32, ge=4)
    pairs_per_generator: int = Field(1000, ge=8)
    generators: list[str] = Field(default_factory=lambda: list(CAPTION_KINDS))
    # Per generator, difficulty settings of its pairs (e.g. the curriculum's `text` style, so the tower's
    # contrastive pretraining sees the words it will learn to read); empty: full difficulty.
    generator_options: dict[str, dict[str, Any]] = Field(default_factory=dict)
    steps: int = Field(150, ge=1)
    batch_size: int = Field(32, ge=2)
    lr: float = Field(3e-3, gt=0)
    warmup_steps: int = Field(20, ge=0)
    save_every: int = Field(50, ge=0)  # checkpoints a killed run resumes from (0: only the last)

    @model_validator(mode="after")
    def _check_options(self) -> DualEncoderConfig:
        from infir.data.images import GENERATORS

        for name, options in self.generator_options.items():
            if name not in self.generators:
                raise ValueError(
                    f"dual_encoder.generator_options: {name!r} is not among generators {self.generators}"
                )
            GENERATORS[name].make_options(options)
        return self


class ImageTextFilterConfig(Section):
    enabled: bool = True
    # A SigLIP/CLIP dual encoder (hub name or path); None: train `dual_encoder` on generated pairs.
    model: str | None = None
    threshold: float = 0.5  # pairs scoring below are dropped
    score: Literal["auto", "sigmoid", "cosine"] = "auto"  # auto: sigmoid when the model has a logit bias
    batch_size: int = Field(64, ge=1)
    heldout_pairs: int = Field(200, ge=0)  # held-out pairs (and as many shuffled) to measure the filter on
    dual_encoder: DualEncoderConfig = Field(default_factory=DualEncoderConfig)


class VLSource(Section):
    """`generated`: images of a tiny-curriculum generator (train split); `llava_json`: a LLaVA-style JSON
    file; `hf`: a Hugging Face dataset (hub name, or a builder such as `parquet` with `data_files`)."""

    type: Literal["generated", "llava_json", "hf"]
    # generated
    generator: str | None = None
    kinds: list[str] | None = None  # QA kinds to train on; None: all the generator writes
    n: int = Field(1000, ge=1)  # images
    max_turns: int = Field(4, ge=1)  # questions per image, asked in one conversation
    seed: int | None = None  # None: derived from the recipe seed, the stage and the source position
    # The generator's difficulty settings (only `text` has any: see infir.data.images.text.TextStyle);
    # empty: its defaults, the full task. Evaluate with the same ones (vl_ocr's `generator_options`).
    options: dict[str, Any] = Field(default_factory=dict)
    # Share of images whose caption is swapped with another image's: simulated web noise for the filter.
    corrupt_fraction: float = Field(0.0, ge=0, lt=1)
    # llava_json
    path: str | None = None
    image_folder: str | None = None
    # hf
    name: str | None = None
    subset: str | None = None
    split: str = "train"
    data_files: Any = None
    image_field: str | None = None
    # any
    limit: int | None = Field(None, ge=1)
    # Replace each image by its text view (what a caption or screen reader would say): a fresh LM learns
    # to answer the questions from text before it sees images (the tiny recipe's warm-up; a real LM
    # has learned reading comprehension in its own training).
    image_as_text: bool = False
    filter: bool = False  # score (image, caption) pairs and drop those under vl.filter.threshold

    @model_validator(mode="after")
    def _check(self) -> VLSource:
        needs = {"generated": "generator", "llava_json": "path", "hf": "name"}[self.type]
        if getattr(self, needs) is None:
            raise ValueError(f"a {self.type} source needs `{needs}`")
        if self.type == "generated":
            from infir.data.images import GENERATORS

            if self.generator not in GENERATORS:
                raise ValueError(f"unknown generator {self.generator!r}; known: {sorted(GENERATORS)}")
            unknown = sorted(set(self.kinds or []) - set(GENERATORS[self.generator].kinds))
            if unknown:
                raise ValueError(
                    f"generator {self.generator!r} writes no {unknown}; it writes "
                    f"{list(GENERATORS[self.generator].kinds)}"
                )
            GENERATORS[self.generator].make_options(self.options)  # a bad setting fails here, naming it
        elif self.corrupt_fraction or self.image_as_text or self.options:
            raise ValueError("corrupt_fraction, image_as_text and options apply to generated sources only")
        if self.image_as_text and self.filter:
            raise ValueError("an image_as_text source has no image-text pairs to filter")
        return self


class CurriculumPhase(Section):
    """One phase of the VL curriculum (`vl.stages` in a recipe, as InfiR-VL calls them; not a pipeline Stage)."""

    name: str
    trains: list[Part]
    data: list[VLSource]
    # The shared trainer's settings; `train.optimizer.module_lr` may give trained parts their own LR.
    train: TrainConfig = Field(
        default_factory=lambda: TrainConfig(
            seq_len=512, schedule=ScheduleConfig(kind="cosine", warmup_ratio=0.05, min_lr_ratio=0.1)
        )
    )
    epochs: float | None = Field(None, gt=0)  # when set, max_steps follows from the packed rows
    packing: bool = True
    max_conversation_tokens: int | None = Field(None, ge=8)  # longer ones are dropped; None: seq_len
    # Replay: {earlier stage: share of this stage's conversations drawn from that stage's own sources}.
    # A stage that trains a part an earlier stage taught overwrites what it is not shown again (the tiny
    # recipe's LM forgot how to read once instruction tuning trained it); replay keeps it in the mix.
    replay: dict[str, float] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _dir_name(cls, name: str) -> str:
        if not name.replace("-", "").replace("_", "").isalnum():
            raise ValueError(f"stage name {name!r} must be letters, digits, - or _ (it names a folder)")
        return name

    @model_validator(mode="after")
    def _check(self) -> CurriculumPhase:
        if not self.trains:
            raise ValueError(f"stage {self.name}: `trains` is empty; nothing would learn")
        if not self.data:
            raise ValueError(f"stage {self.name}: no data sources")
        frozen = {
            p for part, prefixes in MODULE_PREFIXES.items() if part not in self.trains for p in prefixes
        }
        revived = [
            k
            for k, v in self.train.optimizer.module_lr.items()
            if v and any(k == f or k.startswith(f + ".") for f in frozen)
        ]
        if revived:
            raise ValueError(
                f"stage {self.name}: module_lr gives {revived} a learning rate, but `trains` "
                f"({self.trains}) freezes it"
            )
        bad = {k: v for k, v in self.replay.items() if not 0 < v < 1}
        if bad or sum(self.replay.values()) >= 1:
            raise ValueError(
                f"stage {self.name}: replay shares must each be in (0, 1) and sum below 1 (the "
                f"stage's own data is the rest), got {self.replay}"
            )
        return self

    def train_config(self) -> TrainConfig:
        """The trainer config with the parts not in `trains` frozen (module_lr 0)."""
        from infir.model.vlm import trainable_modules

        module_lr = {**trainable_modules(self.trains), **self.train.optimizer.module_lr}
        optimizer = self.train.optimizer.model_copy(update={"module_lr": module_lr})
        return self.train.model_copy(update={"optimizer": optimizer})


def _default_stages() -> list[CurriculumPhase]:
    """InfiR-VL's order: alignment, perception, instruction tuning, reasoning."""

    def stage(name, trains, data, lr):
        return CurriculumPhase(
            name=name,
            trains=trains,
            data=data,
            train=TrainConfig(seq_len=512, optimizer=OptimizerConfig(lr=lr)),
        )

    def gen(g, kinds=None):
        return VLSource(type="generated", generator=g, kinds=kinds)

    return [
        stage(
            "alignment",
            ["projector"],
            [gen("shapes", ["caption", "count", "color", "shape", "position"])],
            1e-3,
        ),
        stage(
            "perception",
            ["vision", "projector"],
            [
                gen("text"),
                gen("charts", ["chart_table"]),
                gen("gui", ["gui_describe", "gui_title", "gui_read"]),
            ],
            5e-4,
        ),
        stage(
            "instruction",
            ["vision", "projector", "language"],
            [gen("shapes"), gen("charts"), gen("text"), gen("gui")],
            3e-4,
        ),
        stage(
            "reasoning",
            ["vision", "projector", "language"],
            [gen("math"), gen("gui", ["click", "type", "scroll"])],
            2e-4,
        ),
    ]


class VLEvalConfig(Section):
    tasks: list[TaskSpec] = Field(
        default_factory=lambda: [TaskSpec(name=n) for n in ("vl_vqa", "vl_ocr", "vl_gui", "vl_math")]
    )
    batch_size: int = Field(32, ge=1)
    after: list[str] | None = None  # stages to evaluate after; None: every stage

    @field_validator("tasks", mode="before")
    @classmethod
    def _names_as_specs(cls, value: Any) -> Any:
        return names_as_specs(value)

    @field_validator("tasks")
    @classmethod
    def _vl_tasks(cls, tasks: list[TaskSpec]) -> list[TaskSpec]:
        from infir.eval.registry import get_task

        for spec in tasks:
            if (
                getattr(
                    get_task(spec.name, data_path=spec.data_path or "-", **spec.options), "modality", None
                )
                != "image"
            ):
                raise ValueError(f"vl.eval: {spec.name!r} is a text task; evaluate it in the eval stage")
        return tasks


class VLConfig(Section):
    vision: VisionConfig = Field(default_factory=VisionConfig)
    projector: ProjectorConfig = Field(default_factory=ProjectorConfig)
    # "auto": this run's SFT model when the recipe runs sft, else a fresh `lm`; or a stage name of this run,
    # a checkpoint path or a Hub name.
    language_model: str | None = "auto"
    lm: ModelConfig = Field(default_factory=lambda: ModelConfig(preset="tiny"))
    tokenizer: TokenizerConfig = Field(
        default_factory=lambda: TokenizerConfig(vocab_size=1024, max_train_chars=2_000_000)
    )
    image_aspect: Literal["resize", "pad"] = "resize"
    heldout_fraction: float = Field(0.2, gt=0, lt=1)  # share of generated content kept for evaluation
    filter: ImageTextFilterConfig = Field(default_factory=ImageTextFilterConfig)
    stages: list[CurriculumPhase] = Field(default_factory=_default_stages)
    eval: VLEvalConfig = Field(default_factory=VLEvalConfig)
    on_bad_record: Literal["fail", "drop"] = "fail"

    @model_validator(mode="after")
    def _check(self) -> VLConfig:
        names = [s.name for s in self.stages]
        if len(set(names)) != len(names):
            raise ValueError(f"vl.stages: names must be distinct, got {names}")
        for i, stage in enumerate(self.stages):
            later = sorted(set(stage.replay) - set(names[:i]))
            if later:
                raise ValueError(
                    f"vl.stages: {stage.name} replays {later}, which is not a stage before it "
                    f"(earlier: {names[:i]})"
                )
        for name in self.eval.after or []:
            if name not in names:
                raise ValueError(f"vl.eval.after: no stage {name!r} (stages: {names})")
        if self.vision.name_or_path == "filter" and (not self.filter.enabled):
            raise ValueError("vl.vision.name_or_path 'filter' needs vl.filter.enabled")
        uses_filter = any(src.filter for s in self.stages for src in s.data)
        if uses_filter and not self.filter.enabled:
            raise ValueError("a vl source sets `filter: true` but vl.filter.enabled is false")
        return self
