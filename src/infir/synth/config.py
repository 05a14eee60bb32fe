"""Typed configuration of `infir synth` (the `synth:` section of a recipe).

Defaults are the tiny recipe's: generated arithmetic and equation seeds, the `generated` teacher (worked
solutions, a configured share of them wrong), math-verify verification, decontamination against the
held-out reasoning problems. A real run names seed files or datasets and an OpenAI-compatible teacher:

synth:
  seeds:
    - {type: jsonl, path: data/gsm8k/train.jsonl, answer_field: answer, answer_format: gsm8k}
  teacher: {type: openai, base_url: "http://127.0.0.1:8000/v1", model: Qwen/Qwen2.5-32B-Instruct,
            api_key_env: TEACHER_API_KEY, concurrency: 64}
  generation: {n: 4, temperature: 0.7}

Secrets never live in a config: `api_key_env` is the NAME of an environment variable holding the key.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from infir.config_base import Section
from infir.curate.config import DecontamConfig, DedupConfig
from infir.data.reasoning import DEFAULT_FAMILIES
from infir.stages import is_checkpoint_stage

Domain = Literal["math", "code", "general"]
_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
# Prefixes of the keys people paste: OpenAI/Anthropic/DeepSeek `sk-`, Hugging Face `hf_`, GitHub, Slack,
# AWS, Google, Groq, Replicate, xAI.
_KEY_PREFIXES = (
    "sk-",
    "sk_",
    "hf_",
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "github_pat_",
    "xox",
    "AKIA",
    "ASIA",
    "AIza",
    "gsk_",
    "r8_",
    "xai-",
    "pk-",
    "rk-",
)
SECRET_MESSAGE = (
    "the value given for api_key_env looks like a secret, not an environment variable name; "
    "pass the NAME of the variable that holds the key (e.g. OPENAI_API_KEY)"
)


def looks_like_secret(value: str) -> bool:
    """A key pasted where the NAME of its variable belongs (judged without ever printing it)."""
    if value.startswith(_KEY_PREFIXES):
        return True
    if not _ENV_NAME.match(value):
        return True  # lower case, dashes, dots: a key, or at least not a variable name to trust
    # Upper case and underscores only, but long and dense with digits: a key in an upper-case alphabet.
    digits = sum(c.isdigit() for c in value)
    return len(value) >= 32 and "_" not in value and digits >= 4


class EndpointConfig(Section):
    """An HTTP endpoint: where it is, how hard to push it, how to survive its failures."""

    base_url: str | None = None  # e.g. http://127.0.0.1:8000/v1 (the part before /chat/completions)
    api_key_env: str | None = None  # NAME of the environment variable holding the key, never the key
    concurrency: int = Field(8, ge=1)  # requests in flight at once
    max_retries: int = Field(5, ge=0)  # on 408/409/425/429/5xx and connection errors
    backoff_seconds: float = Field(0.5, gt=0)  # first retry delay; doubles each retry (with jitter)
    max_backoff_seconds: float = Field(30.0, gt=0)  # cap, also on a server's Retry-After
    requests_per_second: float | None = Field(None, gt=0)  # None: no rate limit
    connect_timeout: float = Field(10.0, gt=0)  # seconds to open a connection
    timeout: float = Field(180.0, gt=0)  # seconds to wait for a reply (between bytes, once connected)
    # The batch stops when no request has succeeded for this long (retries and backoff included), so a
    # server that accepts and never answers costs at most this, not timeout x retries x batch size.
    give_up_after: float = Field(600.0, gt=0)

    @model_validator(mode="after")
    def _budget(self):
        if self.give_up_after < self.timeout:
            raise ValueError(
                f"give_up_after ({self.give_up_after:g} s) must be at least timeout "
                f"({self.timeout:g} s), or no slow reply could ever arrive"
            )
        return self

    @field_validator("api_key_env", mode="before")
    @classmethod
    def _env_name(cls, value):
        if isinstance(value, str) and looks_like_secret(value):
            # A pasted key must reach neither config.yaml nor a message: the error carries no input.
            raise PydanticCustomError("secret_value", SECRET_MESSAGE)
        return value


class TeacherConfig(EndpointConfig):
    """Who answers: `openai` (any OpenAI-compatible chat-completions server: vLLM, SGLang, llama.cpp,
    hosted APIs), `local` (a transformers model run in-process; `model: anneal`, a stage name, is this
    run's annealed checkpoint), or `generated` (the tiny recipe's teacher: worked solutions of generated
    arithmetic and equations, `wrong_fraction` of them deliberately wrong)."""

    type: Literal["openai", "local", "generated"] = "generated"
    model: str | None = None  # served model name (openai) or a folder / hub name / stage name (local)
    temperature: float = Field(0.7, ge=0)
    top_p: float = Field(1.0, gt=0, le=1)
    max_tokens: int = Field(1024, ge=1)
    system_prompt: str | None = None
    extra_body: dict = Field(default_factory=dict)  # sent as-is (e.g. {top_k: 20} for vLLM)
    cache_namespace: str | None = None  # cache key prefix; None: type and model (not the URL)
    # local
    device: str = "auto"
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    batch_size: int = Field(32, ge=1)
    prompt_format: Literal["auto", "chat", "base"] = "auto"  # auto: chat when the tokenizer has a template
    base_template: str = "Question: {prompt}\nAnswer:"  # for base models (the tiny corpus's layout)
    stop: list[str] = Field(default_factory=list)  # base models: e.g. ["\n\n", "Question:"]
    # generated
    wrong_fraction: float = Field(0.3, ge=0, le=1)
    seed: int = 0

    @model_validator(mode="after")
    def _check(self) -> "TeacherConfig":
        if self.type == "openai" and (not self.base_url or not self.model):
            raise ValueError("an openai teacher needs `base_url` and `model`")
        if self.type == "local" and not self.model:
            raise ValueError("a local teacher needs `model` (a folder, hub name or a stage name of this run)")
        if self.type == "local" and self.model.startswith("stage:"):
            raise ValueError(
                f"model {self.model!r}: name this run's checkpoint by the stage name alone "
                f"({self.model.split(':', 1)[1]!r})"
            )
        return self


class SeedSource(Section):
    """Seed instructions. `jsonl`: a local file; `hf`: a dataset by name; `generated`: problems from
    `infir.data.reasoning` (train split); `task`: a split of a registry task (e.g. gsm8k train).

    `answer_field` holds the reference answer when there is one (`answer_format` says how to read the
    final answer from it); without one, math answers are verified by majority vote. `task` names a
    registry task whose `evaluate` judges answers with the record as its document (code runs in the
    sandbox this way: `task: mbpp` with MBPP-shaped records)."""

    type: Literal["jsonl", "hf", "generated", "task"]
    name: str | None = None  # label in ids and counts; hf: the dataset name
    path: str | None = None
    subset: str | None = None
    split: str = "train"
    limit: int | None = Field(None, ge=1)
    prompt_field: str = "question"
    answer_field: str | None = None
    answer_format: Literal["plain", "gsm8k", "boxed"] = "plain"
    id_field: str | None = None
    label_field: str | None = None  # a field holding a fine-grained domain label (e.g. MATH's `type`)
    domain: Domain = "math"
    task: str | None = None
    task_options: dict = Field(default_factory=dict)
    families: list[str] = Field(default_factory=list)  # generated
    per_family: int = Field(100, ge=1)
    seed: int = 0

    @model_validator(mode="after")
    def _check(self) -> "SeedSource":
        if self.type == "jsonl" and not self.path:
            raise ValueError("a jsonl seed source needs `path`")
        if self.type == "hf" and not self.name:
            raise ValueError("an hf seed source needs `name` (the dataset)")
        if self.type == "generated" and not self.families:
            raise ValueError("a generated seed source needs `families`")
        if self.type == "task" and not self.task:
            raise ValueError("a task seed source needs `task` (a registry task name)")
        if self.task is not None:
            from infir.eval.registry import family_prefixes, task_names

            if self.task not in task_names() and self.task.split(":", 1)[0] not in family_prefixes():
                raise ValueError(f"unknown task {self.task!r}; known: {task_names()}")
        return self

    def label(self, index: int) -> str:
        return self.name or (f"{self.type}:{self.task}" if self.type == "task" else f"{self.type}{index}")


DEFAULT_STRATEGIES = {
    "harder": (
        "Rewrite the following problem so that it is harder: it should need more reasoning steps, yet "
        "stay self-contained, unambiguous and solvable, with one final answer. Reply with the new "
        "problem only.\n\nProblem:\n{prompt}"
    ),
    "constrained": (
        "Rewrite the following problem by adding one more condition or requirement that changes how it "
        "is solved. Keep it self-contained and solvable, with one final answer. Reply with the new "
        "problem only.\n\nProblem:\n{prompt}"
    ),
    "diverse": (
        "Write a new problem of the same kind and difficulty as the following one, about a different "
        "situation and with different numbers. Reply with the new problem only.\n\nProblem:\n{prompt}"
    ),
}


class EvolveConfig(Section):
    """Instruction evolution (Evol-Instruct style): the teacher rewrites items; each evolved item keeps
    `seed_id` (its original seed) and `parent_id` (the item it was rewritten from)."""

    enabled: bool = True
    rounds: int = Field(1, ge=0)  # round r rewrites the items round r-1 produced
    fraction: float = Field(0.25, ge=0, le=1)  # share of the items rewritten each round (chosen by hash)
    strategies: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_STRATEGIES))
    temperature: float = Field(0.7, ge=0)
    max_tokens: int = Field(512, ge=1)
    max_chars: int = Field(4000, ge=1)
    keep_seeds: bool = True

    @field_validator("strategies")
    @classmethod
    def _templates(cls, value: dict[str, str]) -> dict[str, str]:
        for name, template in value.items():
            if "{prompt}" not in template:
                raise ValueError(f"evolution strategy {name!r}: the template must contain {{prompt}}")
        return value


DEFAULT_INSTRUCTIONS = {
    "math": 'Solve the problem step by step, then finish with "The answer is X." where X is the final '
    "answer.",
    "code": "Answer with the complete code in a ```python code block.",
    "general": "",
}


class GenerationConfig(Section):
    n: int = Field(4, ge=1)  # candidate answers per prompt
    temperature: float | None = None  # None: the teacher's
    max_tokens: int | None = None
    instructions: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_INSTRUCTIONS))
    seed: int = 0


class DomainVerify(Section):
    """How one domain's answers are verified. `auto`: the seed's task when it names one, else math-verify
    for math, the scorer for the rest (code without a task and tests cannot be verified)."""

    method: Literal["auto", "task", "math_verify", "scorer"] = "auto"
    task: str | None = None  # for method task when items carry none; the record (or question/answer)
    majority_vote: bool = True  # math without a reference: the answer most candidates agree on
    min_votes: int = Field(2, ge=1)  # ... given by at least this many candidates
    min_agreement: float = Field(0.5, ge=0, le=1)  # ... and this share of all candidates


def _default_verify() -> dict[str, DomainVerify]:
    return {d: DomainVerify() for d in ("math", "code", "general")}


class ScorerConfig(EndpointConfig):
    """A reward model or judge. `http`: POST {base_url}{path} {"prompt", "response"} -> {"score": x};
    `judge`: a chat teacher asked `prompt`, its reply's `Score: N` divided by `scale`."""

    type: Literal["http", "judge"] = "judge"
    path: str = "/score"
    teacher: TeacherConfig | None = None
    prompt: str = (
        "Rate the response to the instruction below for correctness, completeness and clarity of "
        'reasoning, from 1 (useless) to 10 (excellent). Reply with "Score: N" on the last line.'
        "\n\n[Instruction]\n{prompt}\n\n[Response]\n{response}"
    )
    scale: float = Field(10.0, gt=0)
    threshold: float = Field(0.5, ge=0, le=1)  # verification: keep answers scoring at least this

    @model_validator(mode="after")
    def _check(self) -> "ScorerConfig":
        if self.type == "http" and not self.base_url:
            raise ValueError("an http scorer needs `base_url`")
        if self.type == "judge" and self.teacher is None:
            raise ValueError("a judge scorer needs `teacher` (the chat model that judges)")
        if self.type == "judge" and ("{prompt}" not in self.prompt or "{response}" not in self.prompt):
            raise ValueError("a judge prompt must contain {prompt} and {response}")
        return self


class DifficultyConfig(Section):
    """Difficulty = 1 - pass rate of a reference model's samples (checked like the teacher's answers)."""

    reference: TeacherConfig | None = None  # None: not scored
    samples: int = Field(4, ge=1)
    min: float = Field(0.0, ge=0, le=1)  # keep items with min <= difficulty <= max
    max: float = Field(1.0, ge=0, le=1)


class AnswerQualityConfig(Section):
    judge: ScorerConfig | None = None  # None: not scored
    min: float = Field(0.0, ge=0, le=1)  # keep answers whose judge score / scale >= min


class LabelConfig(Section):
    """Domain labels: the seed's `label_field`, else (when a labeler is set) the labeler's choice."""

    labeler: TeacherConfig | None = None
    choices: list[str] = Field(
        default_factory=lambda: [
            "arithmetic",
            "algebra",
            "geometry",
            "number theory",
            "probability",
            "word problem",
            "code",
            "general",
        ]
    )
    prompt: str = (
        "Which one of these categories fits the problem below best: {choices}? Reply with the "
        "category only.\n\nProblem:\n{prompt}"
    )


class OutputConfig(Section):
    max_examples: int | None = Field(None, ge=1)
    max_per_prompt: int = Field(1, ge=1)  # distinct verified answers kept per prompt
    order: Literal["input", "hardest_first"] = "input"  # which examples survive `max_examples`
    include_instruction: bool = False  # the user turn shows the answer-format instruction too
    system_prompt: str | None = None
    write_candidates: bool = True  # details/candidates.jsonl: every candidate, its verdict and reason


def _default_seeds() -> list[SeedSource]:
    return [SeedSource(type="generated", name="generated", families=list(DEFAULT_FAMILIES), per_family=200)]


class SynthConfig(Section):
    seeds: list[SeedSource] = Field(default_factory=_default_seeds)
    teacher: TeacherConfig = Field(default_factory=TeacherConfig)
    evolve: EvolveConfig = Field(default_factory=EvolveConfig)
    generation: GenerationConfig = Field(default_factory=GenerationConfig)
    verify: dict[str, DomainVerify] = Field(default_factory=_default_verify)
    scorer: ScorerConfig | None = None  # verifies domains whose method is scorer (general by default)
    difficulty: DifficultyConfig = Field(default_factory=DifficultyConfig)
    quality: AnswerQualityConfig = Field(default_factory=AnswerQualityConfig)
    labels: LabelConfig = Field(default_factory=LabelConfig)
    dedup: DedupConfig = Field(default_factory=lambda: DedupConfig(minhash=False))
    decontam: DecontamConfig = Field(
        default_factory=lambda: DecontamConfig(tasks=["reasoning"], min_item_fraction=1.0)
    )
    output: OutputConfig = Field(default_factory=OutputConfig)
    cache_path: str | None = None  # request cache; None: <run-dir>/cache/synth-requests.sqlite
    sandbox_workers: int = Field(2, ge=1)  # parallel sandboxes for code verification

    @field_validator("verify")
    @classmethod
    def _domains(cls, value: dict[str, DomainVerify]) -> dict[str, DomainVerify]:
        unknown = sorted(set(value) - {"math", "code", "general"})
        if unknown:
            raise ValueError(f"verify: unknown domain(s) {unknown}; domains are math, code, general")
        return {**_default_verify(), **value}

    @model_validator(mode="after")
    def _check(self) -> "SynthConfig":
        if not self.seeds:
            raise ValueError("synth needs at least one seed source")
        if self.difficulty.min > self.difficulty.max:
            raise ValueError("difficulty.min must not exceed difficulty.max")
        for domain, spec in self.verify.items():
            if spec.method == "scorer" and self.scorer is None:
                raise ValueError(f"verify.{domain}.method is scorer but no `scorer` is configured")
        return self

    def _models(self) -> list[TeacherConfig]:
        found = [self.teacher, self.difficulty.reference, self.labels.labeler]
        for scorer in (self.scorer, self.quality.judge):
            found.append(scorer.teacher if scorer is not None else None)
        return [t for t in found if t is not None]

    def stage_models(self) -> tuple[str, ...]:
        """Stages whose checkpoints a local model here uses (`model: anneal`): synth needs them."""
        return tuple(
            dict.fromkeys(
                t.model for t in self._models() if t.type == "local" and is_checkpoint_stage(t.model)
            )
        )

    def input_files(self) -> list[str]:
        """Local seed files: their size and mtime join the stage fingerprint."""
        return [s.path for s in self.seeds if s.type == "jsonl" and s.path]
