"""Base class for every typed config section.

Each component owns a small pydantic model (torchtitan style); the recipe tree in
`infir.config` composes them. Unknown keys are errors, so a typo in a recipe never
silently falls back to a default.
"""

from __future__ import annotations

import typing

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator


def _takes_bool(tp) -> bool:
    if tp is bool or tp is typing.Any:
        return True
    return any(_takes_bool(a) for a in typing.get_args(tp))


def _takes_number(tp) -> bool:
    if tp in (int, float):
        return True
    return any(_takes_number(a) for a in typing.get_args(tp))


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_as_number(cls, value, info: ValidationInfo):
        # pydantic's lax mode reads `max_steps: true` as 1; a boolean where a number belongs is a typo.
        if isinstance(value, bool) and info.field_name in cls.model_fields:
            tp = cls.model_fields[info.field_name].annotation
            if _takes_number(tp) and not _takes_bool(tp):
                raise ValueError("a boolean is not a number")
        return value
