"""Multimodal examples and packed batches for the shared trainer.

Encoding renders the chat template (one `<image>` token per image, the assistant-only loss mask of
`infir.sft.packing`) and expands each `<image>` into the tower's number of patch tokens, exactly as
`LlavaProcessor` does (a test holds the two equal). Packing reuses SFT's best-fit-decreasing rows:
several conversations per row, positions restarting at each, so none attends to another.

A batch adds `pixel_values` (every image of the batch, row by row and in order inside a row, the
order LLaVA scatters image features into `<image>` positions) and `image_rows` (the row of each
image), which lets the trainer cut micro-batches without separating a row from its images.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import torch

from infir.sft.packing import ConversationBatches, Example, encode_conversation
from infir.model.vlm_inputs import ImagePreparer, expand_image_tokens
from infir.vl.data import VLConversation


@dataclass(frozen=True)
class VLExample(Example):
    images: tuple = ()


def encode_vl(tokenizer, conv: VLConversation, image_token_id: int, n_image_tokens: int) -> VLExample:
    ex = encode_conversation(tokenizer, conv.messages)
    found = sum(t == image_token_id for t in ex.input_ids)
    if found != len(conv.images):
        raise ValueError(
            f"{conv.source}: the template wrote {found} image tokens for {len(conv.images)} images"
        )
    ids, labels = expand_image_tokens(ex.input_ids, ex.labels, image_token_id, n_image_tokens)
    return VLExample(ids, labels, tuple(conv.images))


def encode_all_vl(
    tokenizer, conversations: list[VLConversation], image_token_id: int, n_image_tokens: int, max_tokens: int
) -> tuple[list[VLExample], Counter]:
    examples, dropped = [], Counter()
    for conv in conversations:
        ex = encode_vl(tokenizer, conv, image_token_id, n_image_tokens)
        if len(ex.input_ids) > max_tokens:
            dropped["too_long"] += 1
            continue
        examples.append(ex)
    return examples, dropped


class VLBatches(ConversationBatches):
    """SFT's deterministic, resumable packed rows, plus the images of each row."""

    def __init__(
        self,
        examples: list[VLExample],
        seq_len: int,
        global_batch_size: int,
        seed: int,
        pad_id: int,
        prepare_images: ImagePreparer,
        packing: bool = True,
        rank: int = 0,
        world_size: int = 1,
    ):
        super().__init__(examples, seq_len, global_batch_size, seed, pad_id, packing, rank, world_size)
        self.prepare_images = prepare_images

    def batch_at(self, step: int) -> dict[str, torch.Tensor]:
        batch = super().batch_at(step)
        per_rank = self.global_batch // self.world
        start = step * self.global_batch + self.rank * per_rank
        images, rows = [], []
        for r, p in enumerate(range(start, start + per_rank)):
            for i in self.rows[self._row_index(p)]:
                images += self.examples[i].images
                rows += [r] * len(self.examples[i].images)
        if images:
            batch["pixel_values"] = self.prepare_images(images)
            batch["image_rows"] = torch.tensor(rows, dtype=torch.long)
        return batch

    def images_per_epoch(self) -> int:
        return sum(len(e.images) for e in self.examples)
