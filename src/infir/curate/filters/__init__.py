"""Filters: curation steps that keep a document or drop it with a reason (datatrove's contract, through
`infir.curate.steps.CurateStep`, which counts the funnel and writes dropped documents aside).

The built-in ones the pipeline places itself: `langid` (language identification), `heuristic` (the
domain-aware rules of `rules`, `english_rules`, `web`), `quality` (the quality classifier) and `decontam`
(n-gram overlap with every benchmark of the task registry). Any other filter registers here and a recipe
switches it on by name, with its options, under `curate.extra_filters`; it runs in the scan stage right
after the heuristic filters, and its funnel row follows theirs:

    @register_filter
    class MaxDigits(CurateStep):
        name = step_name = "max_digits"
        ...

Adding a filter is its module plus its name in `MODULES` (CONTRIBUTING.md, "Adding a curation filter").
This module imports nothing heavy: the recipe validates `extra_filters` without loading datatrove's steps.
"""

from __future__ import annotations

import importlib

# Modules holding `@register_filter` classes, imported when a recipe names an extra filter.
MODULES: tuple[str, ...] = ()

_FILTERS: dict[str, type] = {}


def register_filter(cls: type) -> type:
    if cls.step_name in _FILTERS and _FILTERS[cls.step_name] is not cls:
        raise ValueError(f"curation filter {cls.step_name!r} registered twice")
    _FILTERS[cls.step_name] = cls
    return cls


def registered_filters() -> dict[str, type]:
    for module in MODULES:
        importlib.import_module(f"infir.curate.filters.{module}")
    return dict(_FILTERS)


def build_extra_filters(specs, removed_dir: str | None) -> list:
    """The recipe's `curate.extra_filters`, in its order, as steps."""
    known = registered_filters()
    return [known[spec.name](removed_dir=removed_dir, **spec.options) for spec in specs]
