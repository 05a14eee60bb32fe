"""The Task: one benchmark's data, prompt format, answer checking and reward.

Evaluation, RL rewards, synthesis verification and decontamination all go through the same Task objects
(via `infir.eval.registry.get_task`), so every benchmark we report is one we decontaminate against and
one whose checker we trust for training signals.

Subclasses set the class attributes and implement `doc_to_text`, `doc_to_target`, `evaluate` and
`reference_output`; the base class does loading, few-shot selection, chat templating and aggregation.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar, Iterator, Literal, Sequence

from infir.eval.loading import DataError, check_fields, load_split

Kind = Literal["generate", "multiple_choice", "code"]


class Task(ABC):
    name: ClassVar[str]
    kind: ClassVar[Kind] = "generate"
    hf_path: ClassVar[str | None] = None  # dataset name on the Hugging Face hub
    hf_config: ClassVar[str | None] = None
    eval_split: ClassVar[str] = "test"
    fewshot_split: ClassVar[str | None] = "train"  # None: few-shot examples come from the eval split
    required_fields: ClassVar[tuple[str, ...]] = ()
    stop_sequences: ClassVar[tuple[str, ...]] = ()
    default_num_fewshot: ClassVar[int] = 0
    default_max_new_tokens: ClassVar[int] = 256
    description: ClassVar[str] = ""  # text placed before the few-shot examples in base prompts
    target_delimiter: ClassVar[str] = " "
    fewshot_delimiter: ClassVar[str] = "\n\n"
    modality: ClassVar[str] = "text"  # "image": docs carry images, only a backend that sees them runs it
    # Columns a per-stage table shows next to the primary metric: {column suffix: metric}.
    report_columns: ClassVar[dict[str, str]] = {}

    def __init__(
        self,
        data_path: str | Path | None = None,
        *,
        split: str | None = None,
        fewshot_seed: int = 1234,
        max_new_tokens: int | None = None,
    ):
        self.data_path = data_path
        self.split = split or self.eval_split
        self.fewshot_seed = fewshot_seed
        self.max_new_tokens = max_new_tokens or self.default_max_new_tokens
        self._docs: list[dict] | None = None
        self._fewshot_pool: list[dict] | None = None

    # ----------------------------------------------------------------- data
    @property
    def source(self) -> str:
        """Where the data comes from: the local path when given, else the hub dataset name."""
        if self.data_path is not None:
            return str(self.data_path)
        if self.hf_path is None:
            raise DataError(f"task {self.name!r} has no default dataset; pass data_path (--data)")
        return self.hf_path

    def load_records(self, split: str, required: bool = True) -> list[dict] | None:
        records = load_split(self.source, split, hf_config=self.hf_config, required=required)
        if records is not None:
            check_fields(records, self.required_fields, f"{self.source} ({self.name}, split {split!r})")
        return records

    def prepare(self, records: list[dict]) -> list[dict]:
        """Turn raw records into docs (filtering, normalising); the identity unless a task needs more."""
        return records

    def docs(self, limit: int | None = None) -> list[dict]:
        """The evaluation documents, in a fixed order; `limit` keeps the first N."""
        if self._docs is None:
            self._docs = self.prepare(self.load_records(self.split) or [])
        return self._docs if limit is None else self._docs[:limit]

    def doc_id(self, doc: dict, index: int) -> Any:
        """How a sample names its document in samples files (`doc_index`; code tasks use `task_id`)."""
        return index

    def decontamination_texts(self) -> Iterator[str]:
        """Every text of the benchmark a model must not train on: questions and reference answers."""
        for doc in self.docs():
            yield self.doc_to_text(doc)
            yield self.reference_output(doc)

    # -------------------------------------------------------------- prompts
    @abstractmethod
    def doc_to_text(self, doc: dict) -> str:
        """The question as the base-model prompt shows it (ends where the answer starts)."""

    @abstractmethod
    def doc_to_target(self, doc: dict) -> str:
        """The answer a few-shot example shows after the question."""

    def chat_user_message(self, doc: dict) -> str:
        """What a chat model is asked; by default the raw question with the task's instruction."""
        return self.doc_to_text(doc)

    def chat_assistant_message(self, doc: dict) -> str:
        return self.doc_to_target(doc)

    def fewshot_examples(self, doc: dict | None, k: int) -> list[dict]:
        """`k` fixed examples (the same for every doc), never the doc itself."""
        if k <= 0:
            return []
        if self._fewshot_pool is None:
            pool = None
            if self.fewshot_split is not None and self.fewshot_split != self.split:
                pool = self.load_records(self.fewshot_split, required=False)
                pool = self.prepare(pool) if pool is not None else None
            pool = list(pool if pool is not None else self.docs())
            random.Random(self.fewshot_seed).shuffle(pool)
            self._fewshot_pool = pool
        question = self.doc_to_text(doc) if doc is not None else None
        shots = [
            ex for ex in self._fewshot_pool[: k + 1] if question is None or self.doc_to_text(ex) != question
        ]
        if len(shots) < k:
            raise DataError(
                f"task {self.name!r}: asked for {k} few-shot examples, only {len(shots)} available"
            )
        return shots[:k]

    def build_prompt(self, doc: dict, num_fewshot: int = 0, chat: bool = False, tokenizer: Any = None) -> str:
        shots = self.fewshot_examples(doc, num_fewshot)
        if chat:
            return self._chat_prompt(doc, shots, tokenizer)
        parts = [self.doc_to_text(ex) + self.target_delimiter + self.doc_to_target(ex) for ex in shots]
        return self.describe(doc) + "".join(p + self.fewshot_delimiter for p in parts) + self.doc_to_text(doc)

    def describe(self, doc: dict) -> str:
        """Text placed before the few-shot examples (MMLU names the subject here)."""
        return self.description

    def chat_messages(self, doc: dict, shots: Sequence[dict] = ()) -> list[dict]:
        messages = []
        for ex in shots:
            messages.append({"role": "user", "content": self.chat_user_message(ex)})
            messages.append({"role": "assistant", "content": self.chat_assistant_message(ex)})
        messages.append({"role": "user", "content": self.chat_user_message(doc)})
        return messages

    def _chat_prompt(self, doc: dict, shots: Sequence[dict], tokenizer: Any) -> str:
        if tokenizer is None or not getattr(tokenizer, "chat_template", None):
            raise ValueError(f"task {self.name!r}: chat prompts need a tokenizer with a chat template")
        return tokenizer.apply_chat_template(
            self.chat_messages(doc, shots), tokenize=False, add_generation_prompt=True
        )

    def stops(self, chat: bool) -> list[str]:
        """Stop strings for generation; chat models stop at their end-of-turn token instead."""
        return [] if chat else list(self.stop_sequences)

    # -------------------------------------------------------------- scoring
    @abstractmethod
    def evaluate(self, doc: dict, output: str) -> dict:
        """Judge one model output: at least {"correct": bool, "extracted": str | None}."""

    @abstractmethod
    def reference_output(self, doc: dict) -> str:
        """The benchmark's own solution written as a model would: it must score as correct."""

    def reward(self, doc: dict, output: str) -> float:
        """Scalar reward for RL and synthesis verification: 1.0 when the output is judged correct."""
        return 1.0 if self.evaluate(doc, output)["correct"] else 0.0

    def evaluate_many(self, docs: Sequence[dict], outputs: Sequence[str], workers: int = 1) -> list[dict]:
        """Judge many outputs; code tasks override this to run sandboxes in parallel."""
        return [self.evaluate(doc, out) for doc, out in zip(docs, outputs, strict=True)]

    primary_metric: ClassVar[str] = "accuracy"

    def aggregate(self, verdicts: Sequence[dict]) -> dict[str, float]:
        n = len(verdicts)
        return {"accuracy": sum(bool(v["correct"]) for v in verdicts) / n if n else 0.0}
