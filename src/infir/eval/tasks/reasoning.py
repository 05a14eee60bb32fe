"""Generated reasoning problems: the tiny recipe's held-out task and reasoning-gym's own families.

`reasoning` (and `reasoning:<family>`) evaluates on problems from `infir.data.reasoning.generate(...,
split="heldout")`, the split the tiny corpus never contains. Base models see the problems as the corpus
shows them, "Question: ...\\nAnswer:", and are judged by exact match of the number after the last
"The answer is". Chat models get the bare question as a user turn.

`rg:<generator>` runs any reasoning-gym generator (leg_counting, letter_counting, ...) and scores the
answer inside `<answer>...</answer>` with that generator's own `score_answer`, which may give partial
credit; `correct` means full credit.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

from infir.data import reasoning as problems
from infir.eval.answers import normalize_number
from infir.eval.loading import DataError, check_fields, read_records
from infir.eval.registry import register, register_family
from infir.eval.task import Task

DEFAULT_FAMILIES = problems.DEFAULT_FAMILIES


# One written step of a worked solution: "a op b = c" (operands may be negative).
_STEP = re.compile(r"(-?\d+(?:\.\d+)?) ([-+*/]) (-?\d+(?:\.\d+)?) =")


def first_step_operands(text: str) -> tuple[str, str, str] | None:
    """The operands and operator of the first arithmetic step in `text`: the part of a solution that is
    copied from the question, so a model that cannot copy fails here before any arithmetic."""
    m = _STEP.search(text)
    return (m.group(1), m.group(2), m.group(3)) if m else None


def _same_answer(extracted: str | None, gold: str) -> bool:
    if extracted is None:
        return False
    a, b = normalize_number(extracted), normalize_number(gold)
    return a == b if a is not None and b is not None else extracted.strip() == gold.strip()


@register
class HeldoutReasoning(Task):
    """Held-out generated problems with worked solutions; the tiny recipe's headline task."""

    name = "reasoning"
    kind = "generate"
    stop_sequences = ("\n\n", "Question:")
    target_delimiter = " "
    fewshot_delimiter = "\n\n"  # worksheets separate problems by blank lines
    required_fields = ("question", "answer")
    default_num_fewshot = 0
    default_max_new_tokens = 96

    def __init__(
        self,
        data_path: str | Path | None = None,
        *,
        families: Sequence[str] = DEFAULT_FAMILIES,
        n: int = 50,
        seed: int = 0,
        heldout_fraction: float = problems.HELDOUT_FRACTION,
        **kw,
    ):
        super().__init__(data_path, **kw)
        if isinstance(families, str):
            families = [f.strip() for f in families.split(",") if f.strip()]
        self.families = tuple(families)
        self.n, self.seed, self.heldout_fraction = n, seed, heldout_fraction

    @property
    def source(self) -> str:
        return str(self.data_path) if self.data_path else f"generated:{','.join(self.families)}"

    def _generate(self, split: str, n: int) -> list[dict]:
        docs = []
        for family in self.families:
            for p in problems.generate(
                family, n, self.seed, split=split, heldout_fraction=self.heldout_fraction
            ):
                docs.append(p.to_dict())
        return docs

    def docs(self, limit: int | None = None) -> list[dict]:
        if self._docs is None:
            if self.data_path is not None:  # a saved problem set (JSONL of Problem dicts)
                records = read_records(Path(self.data_path))
                check_fields(records, self.required_fields, str(self.data_path))
                self._docs = [r for r in records if r.get("family", self.families[0]) in self.families]
            else:
                self._docs = self._generate("heldout", self.n)
        return self._docs if limit is None else self._docs[:limit]

    def fewshot_examples(self, doc: dict | None, k: int) -> list[dict]:
        # Worked examples of the doc's own family, from the train split, so no held-out problem leaks.
        if k <= 0:
            return []
        family = (doc or {}).get("family", self.families[0])
        shots = problems.generate(
            family, k, self.fewshot_seed, split="train", heldout_fraction=self.heldout_fraction
        )
        return [p.to_dict() for p in shots]

    def doc_to_text(self, doc: dict) -> str:
        return f"Question: {doc['question']}\nAnswer:"

    def doc_to_target(self, doc: dict) -> str:
        if "solution" not in doc:
            raise DataError(f"{self.source}: few-shot examples need a `solution` field")
        return doc["solution"]

    def chat_user_message(self, doc: dict) -> str:
        return doc["question"]

    def reference_output(self, doc: dict) -> str:
        return doc.get("solution") or f"{problems.ANSWER_PREFIX} {doc['answer']}."

    def evaluate(self, doc: dict, output: str) -> dict:
        extracted = problems.extract_answer(output)
        verdict = {
            "correct": _same_answer(extracted, str(doc["answer"])),
            "extracted": extracted,
            "family": doc.get("family"),
        }
        reference = first_step_operands(doc["solution"]) if doc.get("solution") else None
        if reference is not None:
            verdict["first_step_copied"] = first_step_operands(output) == reference
        return verdict

    def aggregate(self, verdicts: Sequence[dict]) -> dict[str, float]:
        metrics = super().aggregate(verdicts)
        copied = [v["first_step_copied"] for v in verdicts if "first_step_copied" in v]
        if copied:
            metrics["first_step_copied"] = sum(copied) / len(copied)
        families = sorted({v.get("family") for v in verdicts if v.get("family")})
        if len(families) > 1:
            for family in families:
                mine = [v for v in verdicts if v.get("family") == family]
                metrics[f"accuracy_{family}"] = sum(v["correct"] for v in mine) / len(mine)
        return metrics


def _heldout_family(member: str, **options) -> HeldoutReasoning:
    task = HeldoutReasoning(families=[member], **options)
    task.name = f"reasoning:{member}"
    return task


register_family("reasoning", _heldout_family)


class ReasoningGym(Task):
    """Any reasoning-gym generator, scored by its own `score_answer` on the `<answer>` tag."""

    kind = "generate"
    stop_sequences = ("\n\nQuestion:", "Question:")
    default_num_fewshot = 0
    default_max_new_tokens = 512

    def __init__(
        self,
        generator: str,
        data_path: str | Path | None = None,
        *,
        n: int = 100,
        seed: int = 0,
        config: dict | None = None,
        system_prompt: str = "default",
        **kw,
    ):
        super().__init__(data_path, **kw)
        import reasoning_gym

        self.name = f"rg:{generator}"
        self.generator, self.n, self.seed, self.config = generator, n, seed, dict(config or {})
        try:
            self._score = reasoning_gym.get_score_answer_fn(generator)
        except Exception as e:  # reasoning-gym raises a bare KeyError/ValueError for unknown names
            raise KeyError(f"reasoning-gym has no generator {generator!r}") from e
        from reasoning_gym.utils import SYSTEM_PROMPTS

        if system_prompt not in SYSTEM_PROMPTS:
            raise ValueError(f"{self.name}: system_prompt must be one of {sorted(SYSTEM_PROMPTS)}")
        self.system_prompt = SYSTEM_PROMPTS[system_prompt]

    @property
    def source(self) -> str:
        return str(self.data_path) if self.data_path else f"reasoning-gym:{self.generator}"

    def docs(self, limit: int | None = None) -> list[dict]:
        if self._docs is None:
            if self.data_path is not None:
                self._docs = read_records(Path(self.data_path))
                check_fields(self._docs, ("question", "answer", "metadata"), str(self.data_path))
            else:
                import reasoning_gym

                ds = reasoning_gym.create_dataset(self.generator, size=self.n, seed=self.seed, **self.config)
                self._docs = [dict(entry) for entry in ds]
        return self._docs if limit is None else self._docs[:limit]

    def fewshot_examples(self, doc: dict | None, k: int) -> list[dict]:
        if k <= 0:
            return []
        import reasoning_gym

        # A different seed than the eval docs, so examples are other problems of the same generator.
        ds = reasoning_gym.create_dataset(
            self.generator, size=k, seed=self.fewshot_seed + 7919, **self.config
        )
        return [dict(e) for e in ds]

    def doc_to_text(self, doc: dict) -> str:
        return f"Question: {doc['question']}\nAnswer:"

    def doc_to_target(self, doc: dict) -> str:
        return f"<answer>{doc['answer']}</answer>"

    def build_prompt(self, doc: dict, num_fewshot: int = 0, chat: bool = False, tokenizer=None) -> str:
        if not chat:
            # Base models are told the answer format once, before the examples.
            return "Put the final answer between <answer> and </answer> tags.\n\n" + super().build_prompt(
                doc, num_fewshot, chat, tokenizer
            )
        return super().build_prompt(doc, num_fewshot, chat, tokenizer)

    def chat_messages(self, doc: dict, shots=()) -> list[dict]:
        return [{"role": "system", "content": self.system_prompt}] + super().chat_messages(doc, shots)

    def chat_user_message(self, doc: dict) -> str:
        return doc["question"]

    def reference_output(self, doc: dict) -> str:
        return self.doc_to_target(doc)

    def evaluate(self, doc: dict, output: str) -> dict:
        from reasoning_gym.utils import extract_answer

        extracted = extract_answer(output)
        score = float(self._score(extracted, doc)) if extracted is not None else 0.0
        return {"correct": score >= 1.0, "extracted": extracted, "score": score}

    def reward(self, doc: dict, output: str) -> float:
        return self.evaluate(doc, output)["score"]

    def aggregate(self, verdicts: Sequence[dict]) -> dict[str, float]:
        metrics = super().aggregate(verdicts)
        metrics["mean_score"] = sum(v["score"] for v in verdicts) / len(verdicts) if verdicts else 0.0
        return metrics


register_family("rg", lambda member, **options: ReasoningGym(member, **options))
