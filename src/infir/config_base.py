"""Base class for every typed config section.

Each component owns a small pydantic model (torchtitan style); the recipe tree in
`infir.config` composes them. Unknown keys are errors, so a typo in a recipe never
silently falls back to a default.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())
