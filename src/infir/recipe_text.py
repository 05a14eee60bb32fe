"""Recipe text: reading a recipe file, its YAML errors, `key=value` overrides, and the error they raise.

The ground layer's half of the recipe, so that a package's direct command line (`infir curate ...`,
`infir synth ...`) reads recipe-style YAML and overrides without importing the whole config tree.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


class RecipeError(ValueError):
    """A recipe that does not validate; the message names file, line, key and expected type."""


def yaml_problem(exc: yaml.YAMLError) -> str:
    """` (line L, column C): what` on one line, from PyYAML's multi-line message."""
    mark = getattr(exc, "problem_mark", None)
    where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
    problem = getattr(exc, "problem", None) or " ".join(str(exc).split())
    return f"{where}: {problem}"


def read_recipe_text(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RecipeError(
            f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason}); save the recipe as UTF-8"
        ) from None
    except OSError as exc:
        raise RecipeError(f"{path}: cannot read: {exc.strerror or exc}") from None


def parse_override(item: str) -> tuple[list[str], Any]:
    if "=" not in item:
        raise RecipeError(f"override {item!r} is not of the form key.sub=value")
    key, raw = item.split("=", 1)
    keys = key.strip().split(".")
    if not all(keys):
        raise RecipeError(f"override {item!r} has an empty key part")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return keys, value


def apply_override(tree: dict, keys: list[str], value: Any) -> None:
    """Set `tree[k1][k2]...[kn] = value`; integer parts index lists (`curate.sources.0.limit=5`)."""
    node: Any = tree
    for depth, k in enumerate(keys):
        last = depth == len(keys) - 1
        where = ".".join(keys[: depth + 1])
        if isinstance(node, list):
            if not k.isdigit() or int(k) >= len(node):
                raise RecipeError(
                    f"override {'.'.join(keys)}: {where} is not an item of a list of {len(node)}"
                )
            if last:
                node[int(k)] = value
            else:
                node = node[int(k)]
            continue
        if not isinstance(node, dict):
            raise RecipeError(f"override {'.'.join(keys)}: {'.'.join(keys[:depth])} is not a section")
        if last:
            node[k] = value
        else:
            if node.get(k) is None:
                node[k] = {}
            node = node[k]
