"""GSM8K: grade-school word problems with a numeric final answer.

Prompt and extraction follow lm-evaluation-harness's `gsm8k` task so numbers are comparable:
"Question: ...\\nAnswer:" with the full worked solution ("... #### 18") as few-shot targets. Two scores:
strict (the number after `####` or "The answer is") and flexible (the last number in the output).
"""

from __future__ import annotations

from typing import Sequence

from infir.eval.answers import flexible_number, normalize_number, strict_number
from infir.eval.loading import DataError
from infir.eval.registry import register
from infir.eval.task import Task

CHAT_INSTRUCTION = 'Solve the problem step by step, then finish with "The answer is N." where N is the final number.'


@register
class GSM8K(Task):
    name = "gsm8k"
    kind = "generate"
    hf_path = "openai/gsm8k"
    hf_config = "main"
    eval_split = "test"
    fewshot_split = "train"
    required_fields = ("question", "answer")
    stop_sequences = ("Question:", "</s>", "<|im_end|>", "\n\n\n")
    default_num_fewshot = 5
    default_max_new_tokens = 256
    primary_metric = "strict_match"

    def gold(self, doc: dict) -> str:
        value = normalize_number(doc["answer"].rsplit("####", 1)[-1]) if "####" in doc["answer"] else None
        if value is None:
            raise DataError(f"{self.source}: GSM8K answer has no '#### N' final answer: {doc['answer'][-80:]!r}")
        return value

    def doc_to_text(self, doc: dict) -> str:
        return f"Question: {doc['question'].strip()}\nAnswer:"

    def doc_to_target(self, doc: dict) -> str:
        return doc["answer"].strip()

    def chat_user_message(self, doc: dict) -> str:
        return f"{doc['question'].strip()}\n{CHAT_INSTRUCTION}"

    def chat_assistant_message(self, doc: dict) -> str:
        steps = doc["answer"].rsplit("####", 1)[0].strip()
        return f"{steps}\nThe answer is {self.gold(doc)}."

    def reference_output(self, doc: dict) -> str:
        return doc["answer"]

    def decontamination_texts(self):
        for doc in self.docs():
            yield doc["question"]
            yield doc["answer"]

    def evaluate(self, doc: dict, output: str) -> dict:
        gold = self.gold(doc)
        strict, flexible = strict_number(output), flexible_number(output)
        return {"correct": strict == gold, "extracted": strict, "flexible": flexible,
                "flexible_correct": flexible == gold, "gold": gold}

    def aggregate(self, verdicts: Sequence[dict]) -> dict[str, float]:
        n = len(verdicts) or 1
        return {"strict_match": sum(v["correct"] for v in verdicts) / n,
                "flexible_match": sum(v["flexible_correct"] for v in verdicts) / n}
