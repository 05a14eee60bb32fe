"""The package's dependency graph: no cycles, and no layer importing a layer above it.

Reads every `import infir...` / `from infir... import` in `src/infir` (module level and inside functions
alike: a lazy import is still a dependency), except those under `if TYPE_CHECKING:` (type hints only,
never executed). A node is a top-level module or package of `infir`; a package's `cli.py` (a direct
command-line form such as `infir eval --model`) is a node of its own, in the CLI layer.

The layers, bottom to top (the issue's "ground -> model/tokenize -> train -> stages -> CLI", refined to
what the package really is):
  ground        run-directory contract, stage table, helpers, procedurally generated data
  tokenize      tokenizer, chat template, token shards (the model reads the chat tokens from here)
  model         Hugging Face model builders (LM, vision tower, LLaVA inputs)
  train         the one training entry point and its parts
  eval          the Task registry and the one evaluation path: every stage that judges, decontaminates,
                rewards or benchmarks reads it
  stages        the stage packages; inside the layer a stage may import another (synth -> curate,
                vl -> sft, report -> export), the cycle check keeps those one way
  composition   the recipe (every stage's config section) and the preflight check of its inputs
  cli           `infir` and the direct forms
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "infir"

LAYERS: list[tuple[str, set[str]]] = [
    (
        "ground",
        {
            "infir",
            "config_base",
            "recipe_text",
            "jsonl",
            "lock",
            "procs",
            "guards",
            "integrity",
            "run",
            "stages",
            "data",
        },
    ),
    ("tokenize", {"tokenize"}),
    ("model", {"model"}),
    ("train", {"train"}),
    ("eval", {"eval"}),
    ("stages", {"curate", "pretrain", "sft", "synth", "rl", "vl", "export", "inputs", "report"}),
    ("composition", {"config", "preflight"}),
    ("cli", {"cli", "__main__", "curate.cli", "eval.cli", "export.cli", "synth.cli"}),
]
LAYER_OF = {node: i for i, (_, nodes) in enumerate(LAYERS) for node in nodes}


def node_of(module: str) -> str:
    """`infir.eval.tasks.gsm8k` -> `eval`; `infir.eval.cli` -> `eval.cli`; `infir` -> `infir`."""
    parts = module.split(".")
    if len(parts) == 1:
        return "infir"
    if len(parts) >= 3 and parts[2] == "cli":
        return f"{parts[1]}.cli"
    return parts[1]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    return skipped


def imports_of(path: Path) -> set[str]:
    """The `infir` modules a file imports (relative imports resolved against its package)."""
    tree = ast.parse(path.read_text(), str(path))
    skipped = _type_checking_nodes(tree)
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                found.add(".".join(base + ([node.module] if node.module else [])))
            elif node.module:
                found.add(node.module)
    return {m for m in found if m == "infir" or m.startswith("infir.")}


def dependency_graph() -> dict[str, dict[str, list[str]]]:
    """{node: {imported node: [files importing it]}}."""
    graph: dict[str, dict[str, list[str]]] = {}
    for path in sorted(SRC.rglob("*.py")):
        source = node_of(module_name(path))
        graph.setdefault(source, {})
        for target in {node_of(m) for m in imports_of(path)} - {source}:
            graph[source].setdefault(target, []).append(str(path.relative_to(SRC)))
    return graph


def find_cycle(graph: dict[str, dict[str, list[str]]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node], _ = 1, path.append(node)
        for nxt in sorted(graph.get(node, {})):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = 2
        path.pop()
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_every_node_has_a_layer():
    missing = sorted(set(dependency_graph()) - set(LAYER_OF))
    assert not missing, f"modules/packages of infir with no layer in {__file__}: {missing}"


def test_the_package_graph_has_no_cycle():
    graph = dependency_graph()
    cycle = find_cycle(graph)
    assert cycle is None, (
        "import cycle: "
        + " -> ".join(f"{a} ({graph[a][b][0]})" for a, b in zip(cycle, cycle[1:]))
        + f" -> {cycle[-1]}"
    )


def test_no_layer_imports_a_layer_above_it():
    upward = []
    for source, targets in dependency_graph().items():
        for target, files in targets.items():
            if LAYER_OF.get(target, -1) > LAYER_OF.get(source, len(LAYERS)):
                upward.append(
                    f"{source} ({LAYERS[LAYER_OF[source]][0]}) imports {target} "
                    f"({LAYERS[LAYER_OF[target]][0]}) in {', '.join(sorted(set(files)))}"
                )
    assert not upward, "upward imports:\n  " + "\n  ".join(sorted(upward))


@pytest.mark.parametrize(
    "module, node",
    [
        ("infir", "infir"),
        ("infir.eval.tasks.gsm8k", "eval"),
        ("infir.eval.cli", "eval.cli"),
        ("infir.cli", "cli"),
    ],
)
def test_nodes(module, node):
    assert node_of(module) == node


def test_a_cycle_and_an_upward_import_are_found():
    assert find_cycle({"a": {"b": ["x"]}, "b": {"a": ["y"]}}) == ["a", "b", "a"]
    assert find_cycle({"a": {"b": ["x"]}, "b": {}}) is None
