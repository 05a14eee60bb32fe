"""The recipe: one typed config tree, loaded from YAML with `key=value` overrides.

Each component owns its section's model; this module composes them and turns validation
errors into messages that name the recipe file, the line, the dotted key and the expected type.
"""

from __future__ import annotations

import types
import typing
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from infir.config_base import Section
from infir.curate.config import CurateConfig
from infir.eval.config import EvalConfig
from infir.export.config import ExportConfig
from infir.inputs.config import InputsConfig
from infir.model.llm import ModelConfig
from infir.recipe_text import (  # noqa: F401  (re-exported)
    RecipeError,
    apply_override,
    parse_override,
    read_recipe_text,
    yaml_problem,
)
from infir.rl.config import RLConfig
from infir.sft.config import SFTConfig
from infir.stages import STAGE_ORDER, check_starts
from infir.synth.config import SynthConfig
from infir.tokenize.config import TokenizeConfig, TokenizerConfig
from infir.train.config import ScheduleConfig, TrainConfig
from infir.vl.config import VLConfig

EMBEDDED_RECIPES = Path(__file__).parent / "recipes"


class RuntimeConfig(Section):
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int | None = Field(None, ge=1)  # torch intra-op threads; None: torch's default


class ReportConfig(Section):
    title: str | None = None
    samples_per_task: int = Field(3, ge=0)


def _anneal_default() -> TrainConfig:
    return TrainConfig(
        init_from="pretrain", data_mix="anneal", schedule=ScheduleConfig(kind="linear", warmup_steps=0)
    )


class Recipe(Section):
    name: str = "run"
    description: str = ""
    seed: int = 0
    run_dir: str | None = None  # default: runs/<name>
    stages: list[str] = Field(
        default_factory=lambda: ["curate", "tokenize", "pretrain", "anneal", "sft", "eval", "report"]
    )
    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig)
    inputs: InputsConfig = Field(default_factory=InputsConfig)
    curate: CurateConfig = Field(default_factory=CurateConfig)
    tokenizer: TokenizerConfig = Field(default_factory=TokenizerConfig)
    tokenize: TokenizeConfig = Field(default_factory=TokenizeConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    pretrain: TrainConfig = Field(default_factory=TrainConfig)
    anneal: TrainConfig = Field(default_factory=_anneal_default)
    synth: SynthConfig = Field(default_factory=SynthConfig)
    sft: SFTConfig = Field(default_factory=SFTConfig)
    rl: RLConfig = Field(default_factory=RLConfig)
    vl: VLConfig = Field(default_factory=VLConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    export: ExportConfig = Field(default_factory=ExportConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)

    @field_validator("stages")
    @classmethod
    def _known_stages(cls, stages: list[str]) -> list[str]:
        unknown = [s for s in stages if s not in STAGE_ORDER]
        if unknown:
            raise ValueError(f"unknown stage(s) {unknown}; known: {list(STAGE_ORDER)}")
        positions = [STAGE_ORDER.index(s) for s in stages]
        if positions != sorted(positions) or len(set(stages)) != len(stages):
            raise ValueError(f"stages must be distinct and in pipeline order {list(STAGE_ORDER)}")
        return stages

    @model_validator(mode="after")
    def _starts(self) -> "Recipe":
        check_starts(self)
        return self

    def resolved_run_dir(self, override: str | Path | None = None) -> Path:
        return Path(override or self.run_dir or Path("runs") / self.name)


# ---- loading ------------------------------------------------------------------------------------
def find_recipe(name_or_path: str | Path) -> Path:
    path = Path(name_or_path)
    if path.is_file():
        return path
    name = str(name_or_path)
    embedded = EMBEDDED_RECIPES / f"{name}.yaml"  # a name may hold dots (infir-vl-1.6b): no Path.suffix here
    if "/" not in name and not name.endswith((".yaml", ".yml")) and embedded.is_file():
        return embedded
    known = sorted(p.stem for p in EMBEDDED_RECIPES.glob("*.yaml"))
    raise RecipeError(f"recipe {str(name_or_path)!r} not found (a YAML file path, or one of {known})")


def load_recipe(name_or_path: str | Path = "tiny", overrides: list[str] | None = None) -> Recipe:
    path = find_recipe(name_or_path)
    text = read_recipe_text(path)
    try:
        tree = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise RecipeError(f"{path}: not valid YAML{yaml_problem(exc)}") from None
    if not isinstance(tree, dict):
        raise RecipeError(f"{path}: the top level must be a mapping of sections")
    overridden = set()
    for item in overrides or []:
        keys, value = parse_override(item)
        apply_override(tree, keys, value)
        overridden.add(tuple(keys))
    try:
        return Recipe.model_validate(tree)
    except ValidationError as exc:
        raise RecipeError(format_errors(exc, path, text, overridden)) from None


def format_errors(exc: ValidationError, path: Path, text: str, overridden: set[tuple[str, ...]]) -> str:
    lines = [f"{path}: invalid recipe ({exc.error_count()} error{'s' if exc.error_count() > 1 else ''})"]
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        key = ".".join(loc) or "(top level)"
        where = "override" if any(tuple(loc[: len(o)]) == o for o in overridden) else _yaml_line(text, loc)
        where = f" [{where}]" if where else ""
        if err["type"] == "extra_forbidden":
            parent = ".".join(loc[:-1])
            known = _known_keys(loc[:-1])
            hint = f"; known keys{' in ' + parent if parent else ''}: {', '.join(known)}" if known else ""
            lines.append(f"  {key}{where}: unknown key{hint}")
        else:
            expected = _expected_type(loc)
            # A value refused as a secret is never echoed.
            shown = "input" in err and not isinstance(err["input"], dict) and err["type"] != "secret_value"
            got = f", got {err['input']!r}" if shown else ""
            exp = f"expected {expected}{got}: " if expected else ""
            lines.append(f"  {key}{where}: {exp}{err['msg']}")
    return "\n".join(lines)


def _field_at(loc: list[str]):
    model: Any = Recipe
    info = None
    for part in loc:
        model = _unwrap_model(model)
        if model is None or not hasattr(model, "model_fields") or part not in model.model_fields:
            return None
        info = model.model_fields[part]
        model = info.annotation
    return info


def _unwrap_model(tp):
    if isinstance(tp, type) and issubclass(tp, Section):
        return tp
    for arg in typing.get_args(tp):
        found = _unwrap_model(arg)
        if found is not None:
            return found
    return None


def _known_keys(loc: list[str]) -> list[str]:
    model = Recipe if not loc else (_unwrap_model(_field_at(loc).annotation) if _field_at(loc) else None)
    return sorted(model.model_fields) if model is not None else []


def _type_name(tp) -> str:
    if tp is type(None):
        return "null"
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is not None:
        args = ", ".join(_type_name(a) for a in typing.get_args(tp))
        return f"{getattr(origin, '__name__', str(origin))}[{args}]"
    if isinstance(tp, type) and issubclass(tp, Section):
        return f"a {tp.__name__} section"
    return getattr(tp, "__name__", str(tp))


def _expected_type(loc: list[str]) -> str | None:
    info = _field_at(loc)
    return _type_name(info.annotation) if info is not None else None


def _yaml_line(text: str, loc: list[str]) -> str | None:
    """`line N` of the deepest key of `loc` present in the YAML text."""
    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return None
    line = None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if k.value == part:
                    line, node = k.start_mark.line + 1, v
                    break
            else:
                break
        elif isinstance(node, yaml.SequenceNode) and part.isdigit() and int(part) < len(node.value):
            node = node.value[int(part)]
            line = node.start_mark.line + 1
        else:
            break
    return f"line {line}" if line else None


def dump_recipe(recipe: Recipe) -> str:
    return yaml.safe_dump(recipe.model_dump(mode="json"), sort_keys=False)
