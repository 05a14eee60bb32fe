"""MBPP: write a Python function from a one-line description and three asserts; judged by the asserts.

Prompt and stop marker follow the original paper and lm-evaluation-harness ("[BEGIN]" ... "[DONE]", three
examples from the `prompt` split). The `sanitized` configuration names the description `prompt` instead
of `text`; both load.
"""

from __future__ import annotations

from infir.eval.registry import register
from infir.eval.tasks.code import CodeTask, code_from_chat


@register
class MBPP(CodeTask):
    name = "mbpp"
    hf_path = "google-research-datasets/mbpp"
    hf_config = "full"
    eval_split = "test"
    fewshot_split = "prompt"
    required_fields = ("task_id", "code", "test_list")
    stop_sequences = ("[DONE]", "\n[BEGIN]")
    target_delimiter = ""
    fewshot_delimiter = "\n"
    default_num_fewshot = 3
    default_max_new_tokens = 512

    @staticmethod
    def description(doc: dict) -> str:  # type: ignore[override]
        return str(doc.get("text") or doc.get("prompt") or "")

    def doc_to_text(self, doc: dict) -> str:
        tests = "\n".join(doc["test_list"])
        return (f"You are an expert Python programmer, and here is your task: {self.description(doc)} "
                f"Your code should pass these tests:\n\n{tests}\n[BEGIN]\n")

    def doc_to_target(self, doc: dict) -> str:
        return f"{doc['code']}\n[DONE]"

    def describe(self, doc: dict) -> str:
        return ""

    def chat_user_message(self, doc: dict) -> str:
        tests = "\n".join(doc["test_list"])
        return (f"{self.description(doc)}\nYour code should pass these tests:\n\n{tests}\n"
                "Answer with the code in a ```python code block.")

    def chat_assistant_message(self, doc: dict) -> str:
        return f"```python\n{doc['code']}\n```"

    def reference_output(self, doc: dict) -> str:
        return doc["code"]

    def decontamination_texts(self):
        for doc in self.docs():
            yield self.description(doc)
            yield doc["code"]

    def program(self, doc: dict, output: str) -> str:
        code = code_from_chat(output) if "```" in output else output
        code = code.split("[DONE]")[0]
        setup = doc.get("test_setup_code") or ""
        return f"{setup}\n{code}\n\n" + "\n".join(doc["test_list"]) + "\n"
