"""MMLU and MMLU-STEM: four-way multiple choice, scored by the log-likelihood of each answer letter.

The prompt is lm-evaluation-harness's `mmlu` layout (subject line, question, lettered choices,
"Answer:"), the choices the continuations " A".." D", and the prediction the most likely one, so the
per-question choices can be compared with lm-eval's directly. A generated output (a chat model asked
for a letter) is judged by the first standalone letter it names.
"""

from __future__ import annotations

import re
from typing import Sequence

from infir.eval.registry import register
from infir.eval.task import Task

LETTERS = ("A", "B", "C", "D")
# lm-evaluation-harness's STEM category of MMLU subjects.
STEM_SUBJECTS = frozenset({
    "abstract_algebra", "anatomy", "astronomy", "college_biology", "college_chemistry",
    "college_computer_science", "college_mathematics", "college_physics", "computer_security",
    "conceptual_physics", "electrical_engineering", "elementary_mathematics", "high_school_biology",
    "high_school_chemistry", "high_school_computer_science", "high_school_mathematics", "high_school_physics",
    "high_school_statistics", "machine_learning",
})
_LETTER = re.compile(r"(?:answer is|Answer:)?\s*\(?\b([ABCD])\b\)?")


@register
class MMLU(Task):
    name = "mmlu"
    kind = "multiple_choice"
    hf_path = "cais/mmlu"
    hf_config = "all"
    eval_split = "test"
    fewshot_split = "dev"
    required_fields = ("question", "choices", "answer")
    default_num_fewshot = 0
    default_max_new_tokens = 16
    stop_sequences = ("\n",)

    def prepare(self, records: list[dict]) -> list[dict]:
        return [r for r in records if self.keep_subject(self.subject(r))]

    def keep_subject(self, subject: str) -> bool:
        return True

    @staticmethod
    def subject(doc: dict) -> str:
        # The hub copy names it `subject`; the math-evaluation-harness export calls it `type`.
        return str(doc.get("subject") or doc.get("type") or "")

    def gold(self, doc: dict) -> int:
        answer = doc["answer"]
        return LETTERS.index(answer) if isinstance(answer, str) else int(answer)

    def describe(self, doc: dict) -> str:
        subject = self.subject(doc).replace("_", " ")
        return f"The following are multiple choice questions (with answers) about {subject}.\n\n"

    def doc_to_text(self, doc: dict) -> str:
        lines = [doc["question"].strip()]
        lines += [f"{letter}. {choice}" for letter, choice in zip(LETTERS, doc["choices"])]
        return "\n".join(lines) + "\nAnswer:"

    def doc_to_target(self, doc: dict) -> str:
        return LETTERS[self.gold(doc)]

    def chat_user_message(self, doc: dict) -> str:
        return self.describe(doc) + self.doc_to_text(doc).removesuffix("Answer:") + \
            "Answer with the letter of the correct choice."

    def continuations(self, doc: dict, chat: bool = False) -> list[str]:
        """What is scored after the prompt, one per choice."""
        delimiter = "" if chat else self.target_delimiter
        return [delimiter + letter for letter in LETTERS[: len(doc["choices"])]]

    def reference_output(self, doc: dict) -> str:
        return f"The answer is {self.doc_to_target(doc)}."

    def decontamination_texts(self):
        for doc in self.docs():
            yield self.doc_to_text(doc)
            yield str(doc["choices"][self.gold(doc)])

    def evaluate_loglikelihoods(self, doc: dict, logprobs: Sequence[float]) -> dict:
        choice = max(range(len(logprobs)), key=lambda i: logprobs[i])
        return {"correct": choice == self.gold(doc), "extracted": LETTERS[choice], "choice": choice,
                "logprobs": [round(x, 4) for x in logprobs], "subject": self.subject(doc)}

    def evaluate(self, doc: dict, output: str) -> dict:
        m = _LETTER.search(output.strip())
        letter = m.group(1) if m else None
        return {"correct": letter == self.doc_to_target(doc), "extracted": letter, "subject": self.subject(doc)}


@register
class MMLUStem(MMLU):
    name = "mmlu_stem"

    def keep_subject(self, subject: str) -> bool:
        return subject in STEM_SUBJECTS
