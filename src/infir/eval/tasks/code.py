"""What HumanEval and MBPP share: running a program built from the output in the sandbox, and pass@k."""

from __future__ import annotations

import re
from abc import abstractmethod
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

import numpy as np

from infir.eval.sandbox import Limits, run_python
from infir.eval.task import Task

_FENCE = re.compile(r"```(?:python|py|Python)?[ \t]*\n(.*?)(?:```|$)", re.DOTALL)


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased estimator of pass@k from n samples with c correct (Chen et al., 2021): 1 - C(n-c,k)/C(n,k)."""
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def code_from_chat(output: str) -> str:
    """The code of a chat answer: the first fenced block that is not empty, else the whole answer."""
    for block in _FENCE.findall(output):
        if block.strip():
            return block
    return output


class CodeTask(Task):
    kind = "code"
    primary_metric = "pass@1"
    ks: tuple[int, ...] = (1, 10, 100)

    def __init__(self, data_path=None, *, timeout: float = 10.0, memory_mb: int = 1024, isolation: str = "auto",
                 **kw):
        super().__init__(data_path, **kw)
        self.limits = Limits(cpu_seconds=timeout, wall_seconds=timeout * 2, memory_mb=memory_mb)
        self.isolation = isolation

    @abstractmethod
    def program(self, doc: dict, output: str) -> str:
        """The full program whose success means the output is correct."""

    def doc_id(self, doc: dict, index: int):
        return doc["task_id"]

    def evaluate(self, doc: dict, output: str) -> dict:
        result = run_python(self.program(doc, output), self.limits, self.isolation)  # type: ignore[arg-type]
        return {"correct": result.passed, "passed": result.passed, "extracted": output,
                "result": result.summary(), "seconds": result.seconds}

    def evaluate_many(self, docs: Sequence[dict], outputs: Sequence[str], workers: int = 2) -> list[dict]:
        # Each evaluation waits on a child process, so threads overlap them without contending for the GIL.
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            return list(pool.map(self.evaluate, docs, outputs))

    def aggregate(self, verdicts: Sequence[dict]) -> dict[str, float]:
        by_doc: dict = defaultdict(list)
        for v in verdicts:
            by_doc[v.get("doc_id", id(v))].append(bool(v["correct"]))
        n_min = min((len(x) for x in by_doc.values()), default=0)
        metrics = {}
        for k in self.ks:
            if k <= n_min:
                metrics[f"pass@{k}"] = float(np.mean([pass_at_k(len(x), sum(x), k) for x in by_doc.values()]))
        return metrics
