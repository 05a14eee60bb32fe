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
from typing import Literal

import torch

from infir.sft.packing import ConversationBatches, Example, encode_conversation
from infir.vl.data import VLConversation, open_image

Aspect = Literal["resize", "pad"]


@dataclass(frozen=True)
class VLExample(Example):
    images: tuple = ()


def expand_image_tokens(ids: list[int], labels: list[int], image_token_id: int, n_tokens: int):
    out_ids, out_labels = [], []
    for t, lab in zip(ids, labels):
        if t == image_token_id:
            out_ids += [image_token_id] * n_tokens
            out_labels += [-100] * n_tokens
        else:
            out_ids.append(t)
            out_labels.append(lab)
    return out_ids, out_labels


def encode_vl(tokenizer, conv: VLConversation, image_token_id: int, n_image_tokens: int) -> VLExample:
    ex = encode_conversation(tokenizer, conv.messages)
    found = sum(t == image_token_id for t in ex.input_ids)
    if found != len(conv.images):
        raise ValueError(f"{conv.source}: the template wrote {found} image tokens for {len(conv.images)} images")
    ids, labels = expand_image_tokens(ex.input_ids, ex.labels, image_token_id, n_image_tokens)
    return VLExample(ids, labels, tuple(conv.images))


def encode_all_vl(tokenizer, conversations: list[VLConversation], image_token_id: int, n_image_tokens: int,
                  max_tokens: int) -> tuple[list[VLExample], Counter]:
    examples, dropped = [], Counter()
    for conv in conversations:
        ex = encode_vl(tokenizer, conv, image_token_id, n_image_tokens)
        if len(ex.input_ids) > max_tokens:
            dropped["too_long"] += 1
            continue
        examples.append(ex)
    return examples, dropped


def pad_to_square(img, fill: tuple[int, int, int]):
    """LLaVA's "pad" aspect mode: centre the image on a square of the normalisation mean colour."""
    from PIL import Image

    w, h = img.size
    if w == h:
        return img
    side = max(w, h)
    out = Image.new("RGB", (side, side), fill)
    out.paste(img, ((side - w) // 2, (side - h) // 2))
    return out


class ImagePreparer:
    """Images (PIL, paths, bytes) -> `pixel_values` through the model's own image processor."""

    def __init__(self, image_processor, aspect: Aspect = "resize"):
        self.image_processor, self.aspect = image_processor, aspect
        mean = getattr(image_processor, "image_mean", None) or (0.5, 0.5, 0.5)
        self.fill = tuple(round(255 * m) for m in mean)

    def __call__(self, images: list) -> torch.Tensor:
        opened = [open_image(im) for im in images]
        if self.aspect == "pad":
            opened = [pad_to_square(im, self.fill) for im in opened]
        return self.image_processor(opened, return_tensors="pt")["pixel_values"]


class VLBatches(ConversationBatches):
    """SFT's deterministic, resumable packed rows, plus the images of each row."""

    def __init__(self, examples: list[VLExample], seq_len: int, global_batch_size: int, seed: int, pad_id: int,
                 prepare_images: ImagePreparer, packing: bool = True, rank: int = 0, world_size: int = 1):
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
