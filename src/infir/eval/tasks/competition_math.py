"""MATH (Hendrycks et al.) and its MATH-500 subset, judged by math-verify on the final `\\boxed{}`.

The base prompt is Minerva's "Problem: ... Solution:" layout; chat models are asked to put the final
answer in `\\boxed{}`. The reference answer is MATH-500's `answer` field when present, else the last box of
the reference solution.
"""

from __future__ import annotations

from infir.eval.answers import last_boxed, math_equal, parse_gold, parse_math, shown
from infir.eval.loading import DataError
from infir.eval.registry import register
from infir.eval.task import Task

CHAT_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."


class _CompetitionMath(Task):
    kind = "generate"
    required_fields = ("problem", "solution")
    stop_sequences = ("Problem:", "</s>", "<|im_end|>")
    default_num_fewshot = 4
    default_max_new_tokens = 512

    def gold_answer(self, doc: dict) -> str:
        answer = doc.get("answer")
        if answer is None:
            answer = last_boxed(doc["solution"])
        if answer is None:
            raise DataError(f"{self.source}: MATH record has neither `answer` nor a \\boxed{{}} in its "
                            f"solution: {doc['problem'][:80]!r}")
        return str(answer)

    def doc_to_text(self, doc: dict) -> str:
        return f"Problem:\n{doc['problem'].strip()}\n\nSolution:"

    def doc_to_target(self, doc: dict) -> str:
        return doc["solution"].strip()

    def chat_user_message(self, doc: dict) -> str:
        return f"{doc['problem'].strip()}\n{CHAT_INSTRUCTION}"

    def reference_output(self, doc: dict) -> str:
        return doc["solution"]

    def decontamination_texts(self):
        for doc in self.docs():
            yield doc["problem"]
            yield doc["solution"]

    def evaluate(self, doc: dict, output: str) -> dict:
        gold = self.gold_answer(doc)
        boxed = last_boxed(output)
        # The last box is the answer a solution commits to; boxes before it are intermediate results
        # that math-verify's first-match extraction would otherwise pick.
        predicted = parse_gold(boxed) if boxed is not None else parse_math(output)
        return {"correct": math_equal(parse_gold(gold), predicted), "extracted": shown(predicted),
                "boxed": boxed, "gold": gold}


@register
class MATH(_CompetitionMath):
    name = "math"
    hf_path = "EleutherAI/hendrycks_math"  # per-subject configs; `prepare` is the identity on local files
    hf_config = None
    eval_split = "test"
    fewshot_split = None  # MATH's train split is not shipped locally; exemplars come from other test items

    def load_records(self, split: str, required: bool = True):
        if self.data_path is None and self.hf_config is None:
            # The hub copy is split into one config per subject; read them all, in a fixed order.
            records = []
            for subject in MATH_SUBJECTS:
                records += self._load_hf_subject(subject, split)
            return records
        return super().load_records(split, required)

    def _load_hf_subject(self, subject: str, split: str) -> list[dict]:
        from infir.eval.loading import load_hf

        return load_hf(self.hf_path, subject, split)


@register
class MATH500(_CompetitionMath):
    name = "math500"
    hf_path = "HuggingFaceH4/MATH-500"
    eval_split = "test"
    fewshot_split = None


MATH_SUBJECTS = ("algebra", "counting_and_probability", "geometry", "intermediate_algebra", "number_theory",
                 "prealgebra", "precalculus")
