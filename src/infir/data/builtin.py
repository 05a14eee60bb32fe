"""Corpora every machine has after `pip install infir`.

- `python_stdlib`: Python's standard-library sources (code);
- `python_docs`: module and function docstrings plus the `pydoc_data` help topics (prose);
- `reasoning_gym`: worksheets of generated math problems with worked solutions (math).

Each source yields documents as dicts `{"id", "text", "url", "metadata": {"domain", "source"}}`,
deterministically for a given seed, so the tiny recipe is reproducible on any machine.
"""

from __future__ import annotations

import ast
import random
import sysconfig
from pathlib import Path
from typing import Callable, Iterator

from infir.data import reasoning

Doc = dict

_SKIP_DIRS = {
    "test",
    "tests",
    "idlelib",
    "site-packages",
    "dist-packages",
    "__pycache__",
    "lib2to3",
    "turtledemo",
    "ensurepip",
    "tkinter",
    "config-3",
}


def _stdlib_files(max_bytes: int) -> list[Path]:
    root = Path(sysconfig.get_paths()["stdlib"])
    files = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if any(part in _SKIP_DIRS or part.startswith("config-") for part in rel.parts[:-1]):
            continue
        try:
            if path.stat().st_size <= max_bytes:
                files.append(path)
        except OSError:
            continue
    return files


def python_stdlib(max_docs: int | None = None, seed: int = 0, max_bytes: int = 60_000) -> Iterator[Doc]:
    root = Path(sysconfig.get_paths()["stdlib"])
    files = _stdlib_files(max_bytes)
    random.Random(seed).shuffle(files)
    count = 0
    for path in files:
        if max_docs is not None and count >= max_docs:
            return
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        rel = path.relative_to(root).as_posix()
        yield {
            "id": f"stdlib/{rel}",
            "text": text,
            "url": f"python-stdlib://{rel}",
            "metadata": {"domain": "code", "source": "python_stdlib"},
        }
        count += 1


def python_docs(max_docs: int | None = None, seed: int = 0, min_chars: int = 200) -> Iterator[Doc]:
    """Help topics first, then per-module documentation assembled from docstrings."""
    docs: list[Doc] = []
    try:
        from pydoc_data.topics import topics
    except ImportError:  # some distributions strip pydoc_data
        topics = {}
    for name in sorted(topics):
        text = topics[name].strip()
        if len(text) >= min_chars:
            docs.append(
                {
                    "id": f"pydoc-topic/{name}",
                    "text": text,
                    "url": f"python-docs://topics/{name}",
                    "metadata": {"domain": "web", "source": "python_docs"},
                }
            )
    root = Path(sysconfig.get_paths()["stdlib"])
    for path in _stdlib_files(400_000):
        text = _module_docs(path)
        if text and len(text) >= min_chars:
            rel = path.relative_to(root).with_suffix("").as_posix()
            docs.append(
                {
                    "id": f"pydoc-module/{rel}",
                    "text": text,
                    "url": f"python-docs://library/{rel}",
                    "metadata": {"domain": "web", "source": "python_docs"},
                }
            )
    random.Random(seed).shuffle(docs)
    yield from docs[:max_docs] if max_docs is not None else docs


def _module_docs(path: Path) -> str | None:
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, SyntaxError, ValueError):
        return None
    parts = []
    module_doc = ast.get_docstring(tree)
    if module_doc:
        parts.append(module_doc.strip())
    for node in tree.body:
        if isinstance(
            node, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)
        ) and not node.name.startswith("_"):
            doc = ast.get_docstring(node)
            if doc:
                kind = "class" if isinstance(node, ast.ClassDef) else "function"
                parts.append(f"The {kind} {node.name}: {doc.strip()}")
    return "\n\n".join(parts) if parts else None


def reasoning_gym(
    families: list[str] | None = None,
    docs_per_family: int = 100,
    problems_per_doc: int = 8,
    seed: int = 0,
    heldout_fraction: float = 0.1,
) -> Iterator[Doc]:
    """Worksheets of training-split problems; held-out problems never appear here."""
    families = families or ["chain_sum", "basic_arithmetic", "simple_equations", "gsm_symbolic"]
    for family in families:
        problems = reasoning.generate(
            family,
            docs_per_family * problems_per_doc,
            seed=seed,
            split="train",
            heldout_fraction=heldout_fraction,
        )
        for d in range(docs_per_family):
            chunk = problems[d * problems_per_doc : (d + 1) * problems_per_doc]
            body = "\n\n".join(f"Question: {p.question}\nAnswer: {p.solution}" for p in chunk)
            yield {
                "id": f"rg/{family}/{seed}/{d}",
                "text": f"Worked examples ({family.replace('_', ' ')}).\n\n{body}",
                "url": f"reasoning-gym://{family}/{seed}/{d}",
                "metadata": {"domain": "math", "source": "reasoning_gym"},
            }


BUILTIN_SOURCES: dict[str, Callable[..., Iterator[Doc]]] = {
    "python_stdlib": python_stdlib,
    "python_docs": python_docs,
    "reasoning_gym": reasoning_gym,
}


def iter_builtin(name: str, **kwargs) -> Iterator[Doc]:
    try:
        fn = BUILTIN_SOURCES[name]
    except KeyError:
        raise ValueError(f"unknown builtin source {name!r}; known: {sorted(BUILTIN_SOURCES)}") from None
    return fn(**kwargs)
