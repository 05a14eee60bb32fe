"""What a LLaVA model reads besides text: images opened from any form a dataset holds them in, turned into
`pixel_values` by the model's own image processor, and `<image>` tokens expanded to the tower's patch count.

Training (`infir.vl.batches`) and evaluation (`infir.eval.backends.VLBackend`) both prepare inputs here, so
a model is evaluated on exactly the inputs it was trained on.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

Aspect = Literal["resize", "pad"]


@dataclass(frozen=True)
class LazyImage:
    """Image `k` of row `index` of a (memory-mapped) Hugging Face dataset, read when a batch needs it."""

    dataset: Any
    index: int
    field: str
    k: int = 0

    def load(self):
        value = self.dataset[self.index][self.field]
        return value[self.k] if isinstance(value, (list, tuple)) else value


def open_image(item: Any, where: str = ""):
    """A PIL RGB image from a PIL image, a path, raw bytes, a `{"bytes"|"path": ...}` record or a LazyImage."""
    from PIL import Image

    if isinstance(item, LazyImage):
        return open_image(item.load(), where)
    if isinstance(item, Image.Image):
        img = item
    elif isinstance(item, (str, Path)):
        try:
            img = Image.open(item)
            img.load()
        except (OSError, ValueError) as exc:
            raise FileNotFoundError(f"{where or item}: cannot open image {item}: {exc}") from None
    elif isinstance(item, (bytes, bytearray)):
        img = Image.open(io.BytesIO(item))
    elif isinstance(item, dict) and (item.get("bytes") or item.get("path")):
        return open_image(item.get("bytes") or item["path"], where)
    else:
        raise TypeError(f"{where}: not an image: {type(item).__name__}")
    return img.convert("RGB") if img.mode != "RGB" else img


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

    def __call__(self, images: list):
        opened = [open_image(im) for im in images]
        if self.aspect == "pad":
            opened = [pad_to_square(im, self.fill) for im in opened]
        return self.image_processor(opened, return_tensors="pt")["pixel_values"]
