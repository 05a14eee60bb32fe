"""What vision-language tasks share: documents carry images, prompts are chat turns with `<image>` markers.

A VL task's docs hold `images` (PIL images, paths or byte records) next to the question and the
answer. Its prompt is the chat turn `vl_messages(doc)` rendered by the model's chat template, with one
`<image>` marker per image; the evaluation runner hands the doc's images to the backend beside it (only
`infir.eval.backends.VLBackend` sees images; the text backends refuse such a task). Scoring (`evaluate`,
`aggregate`) is plain text in, verdict out, like every other task.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import ClassVar

from infir.eval.task import Task
from infir.model.vlm import IMAGE_TOKEN


class VLTask(Task):
    modality = "image"
    draws_images: ClassVar[bool] = False
    default_max_new_tokens = 32
    fewshot_split = None

    def images(self, doc: dict) -> list:
        return list(doc["images"])

    def doc_to_text(self, doc: dict) -> str:
        return doc["question"]

    def doc_to_target(self, doc: dict) -> str:
        return str(doc["answer"])

    def reference_output(self, doc: dict) -> str:
        return str(doc["answer"])

    def chat_user_message(self, doc: dict) -> str:
        return IMAGE_TOKEN * len(self.images(doc)) + "\n" + self.doc_to_text(doc)

    def vl_messages(self, doc: dict) -> list[dict]:
        return [{"role": "user", "content": self.chat_user_message(doc)}]

    def build_prompt(self, doc: dict, num_fewshot: int = 0, chat: bool = False, tokenizer=None) -> str:
        """The chat prompt (a VL model is always a chat model); `num_fewshot` and `chat` do not apply."""
        if tokenizer is None or getattr(tokenizer, "chat_template", None) is None:
            raise ValueError(f"task {self.name!r} shows images: it needs a VL model's chat template")
        return tokenizer.apply_chat_template(
            self.vl_messages(doc), tokenize=False, add_generation_prompt=True
        )


class GeneratedVLTask(VLTask):
    """Held-out images of the tiny curriculum's generators; one question per image."""

    generators: ClassVar[tuple[str, ...]] = ()
    kinds: ClassVar[tuple[str, ...]] = ()
    draws_images: ClassVar[bool] = True  # takes `size` and `seed`: the model's image size, the recipe's seed

    def __init__(
        self,
        data_path=None,
        *,
        n: int = 100,
        seed: int = 0,
        size: int = 96,
        heldout_fraction: float = 0.2,
        generator_options: dict | None = None,
        **kw,
    ):
        super().__init__(data_path, **kw)
        self.n, self.seed, self.size, self.heldout_fraction = n, seed, size, heldout_fraction
        # Per generator, the difficulty settings the curriculum trained with (e.g. {"text": {"vocabulary": 12}}).
        self.generator_options = dict(generator_options or {})
        unknown = sorted(set(self.generator_options) - set(self.generators))
        if unknown:
            raise ValueError(
                f"task {self.name!r}: generator_options for {unknown}, but it draws from "
                f"{list(self.generators)}"
            )

    @property
    def source(self) -> str:
        return f"generated:{','.join(self.generators)}:heldout"

    def docs(self, limit: int | None = None) -> list[dict]:
        if self._docs is None:
            from infir.data.images import generate

            self._docs = []
            for name in self.generators:
                for image in generate(
                    name,
                    self.n,
                    self.seed,
                    "heldout",
                    self.size,
                    self.heldout_fraction,
                    options=self.generator_options.get(name),
                ):
                    qas = image.of_kinds(list(self.kinds))
                    if not qas:
                        continue
                    qa = random.Random(image.key).choice(qas)  # the same question for an image, any run
                    self._docs.append(
                        {
                            "images": [image.image],
                            "question": qa.question,
                            "answer": qa.answer,
                            "kind": qa.kind,
                            "generator": name,
                            "key": image.key,
                            **qa.meta,
                            "spec": image.spec,
                        }
                    )
        return self._docs if limit is None else self._docs[:limit]

    @staticmethod
    def by_kind(verdicts: Sequence[dict], field: str = "kind", metric: str = "correct") -> dict[str, float]:
        out = {}
        for value in sorted({v[field] for v in verdicts if v.get(field) is not None}):
            mine = [v for v in verdicts if v.get(field) == value]
            out[f"accuracy_{value}"] = sum(bool(v[metric]) for v in mine) / len(mine)
        return out
