"""The one registry of benchmarks, shared by evaluation, RL, synthesis and decontamination.

    from infir.eval.registry import get_task, task_names
    task = get_task("gsm8k", data_path="path/to/gsm8k")       # or a hub name, or None for the default
    for text in task.decontamination_texts(): ...

Fixed tasks register their class with `@register`. Families of tasks register a factory under a prefix:
`get_task("rg:leg_counting")` builds the reasoning-gym task for that generator,
`get_task("reasoning:chain_sum")` the tiny-recipe held-out task restricted to one family.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from infir.eval.task import Task

_TASKS: dict[str, type["Task"]] = {}
_FAMILIES: dict[str, Callable[..., "Task"]] = {}
_TASK_MODULES = (
    "gsm8k",
    "competition_math",
    "humaneval",
    "mbpp",
    "mmlu",
    "reasoning",
    "vl_generated",
    "vl_benchmarks",
)


def register(cls):
    if cls.name in _TASKS and _TASKS[cls.name] is not cls:
        raise ValueError(f"task name {cls.name!r} registered twice ({_TASKS[cls.name]} and {cls})")
    _TASKS[cls.name] = cls
    return cls


def register_family(prefix: str, factory: Callable[..., "Task"]) -> None:
    """`factory(member, data_path=..., **options)` builds the task `prefix:member`."""
    _FAMILIES[prefix] = factory


def _load_builtin() -> None:
    for module in _TASK_MODULES:
        importlib.import_module(f"infir.eval.tasks.{module}")


def task_names() -> list[str]:
    """Names of the fixed tasks (families such as `rg:<generator>` are listed by `family_prefixes`)."""
    _load_builtin()
    return sorted(_TASKS)


def family_prefixes() -> list[str]:
    _load_builtin()
    return sorted(_FAMILIES)


def task_class(name: str) -> type["Task"] | None:
    """The class of a fixed task (None for a family member such as `rg:leg_counting`, or an unknown name)."""
    _load_builtin()
    return _TASKS.get(name)


def get_task(name: str, data_path: str | Path | None = None, **options) -> "Task":
    """Build a task by name; `options` are the task's keyword arguments (split, max_new_tokens, ...)."""
    _load_builtin()
    if name in _TASKS:
        build = _TASKS[name]
    elif ":" in name and name.split(":", 1)[0] in _FAMILIES:
        prefix, member = name.split(":", 1)
        build = lambda **kw: _FAMILIES[prefix](member, **kw)  # noqa: E731
    else:
        known = ", ".join(task_names() + [f"{p}:<name>" for p in family_prefixes()])
        raise KeyError(f"unknown task {name!r}; known tasks: {known}")
    try:
        return build(data_path=data_path, **options)
    except TypeError as e:
        if "unexpected keyword argument" in str(e):
            raise ValueError(f"task {name!r} does not take option(s) {sorted(options)}: {e}") from e
        raise
