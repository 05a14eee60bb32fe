"""What every image generator shares: the sample record, held-out splitting, fonts and colours.

A generator is four functions: `spec(rng) -> dict` draws the content of one image (cheap, no
pixels; a generator with `options` takes them: `spec(rng, options)`), `questions(spec)` writes its
questions and answers, `draw(spec, size)` paints it and `view(spec)` says in words what it shows. The split is decided on the spec's `key` (its
content without incidental jitter) by hash, before anything is drawn, so train and held-out images
never share content, for any seed or size, and held-out images cost nothing to skip.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path
from typing import Literal

Split = Literal["train", "heldout"]


@dataclass
class QA:
    """One question about an image and its reference answer."""

    kind: str  # e.g. "count", "ocr", "click"; selects what a curriculum stage trains on
    question: str
    answer: str
    meta: dict = field(default_factory=dict)  # what scoring needs beyond the answer (GUI target box)


@dataclass
class GeneratedImage:
    generator: str
    key: str
    image: object  # PIL.Image.Image
    qas: list[QA]
    spec: dict = field(default_factory=dict)
    view: str = ""

    def of_kinds(self, kinds: list[str] | None) -> list[QA]:
        return [qa for qa in self.qas if kinds is None or qa.kind in kinds]


@dataclass(frozen=True)
class ImageGenerator:
    name: str
    kinds: tuple[str, ...]  # every QA kind it writes
    spec: Callable[[random.Random], dict]  # the content of one image, drawn from `rng`
    questions: Callable[[dict], list[QA]]  # what is asked about it (no pixels needed)
    draw: Callable[[dict, int], object]  # the PIL image at `size` pixels
    # The image's content in words, as a caption or a screen reader would give it: everything its
    # questions need. A language model first learns to answer from this text (see VLSource.image_as_text).
    view: Callable[[dict], str]
    # A frozen dataclass of the generator's settings (how hard its images are), or None when it has none.
    options: type | None = None

    def make_options(self, options: dict | None):
        """The generator's settings from a plain mapping (None or {}: its defaults, full difficulty)."""
        if self.options is None:
            if options:
                raise ValueError(f"generator {self.name!r} takes no options, got {sorted(options)}")
            return None
        try:
            return self.options(**(options or {}))
        except TypeError as exc:
            raise ValueError(f"generator {self.name!r} options: {exc}") from None

    def draw_spec(self, rng: random.Random, options=None) -> dict:
        return self.spec(rng) if self.options is None else self.spec(rng, options or self.options())

    def render(self, spec: dict, size: int, draw: bool = True) -> GeneratedImage:
        image = self.draw(spec, size) if draw else None
        return GeneratedImage(self.name, spec["key"], image, self.questions(spec), spec, self.view(spec))


def is_heldout(key: str, fraction: float) -> bool:
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 < fraction


def iter_specs(
    gen: ImageGenerator, seed: int, split: Split, heldout_fraction: float, patience: int, options=None
):
    """Specs of `split`, distinct by key, in a deterministic order; ends after `patience` draws in a
    row bring nothing new (the generator has run out of distinct content for this split)."""
    seen: set[str] = set()
    i = since_new = 0
    while since_new < patience:
        spec = gen.draw_spec(random.Random(f"{gen.name}:{seed}:{i}"), options)
        i += 1
        since_new += 1
        key = spec["key"]
        if key in seen or is_heldout(key, heldout_fraction) != (split == "heldout"):
            continue
        seen.add(key)
        since_new = 0
        yield spec


# ---- drawing helpers ------------------------------------------------------------------------------
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 160, 60),
    "blue": (40, 80, 220),
    "yellow": (235, 200, 30),
    "purple": (140, 60, 180),
    "orange": (245, 130, 20),
}

# DejaVu and STIX ship inside matplotlib (a base dependency), so every install has them.
FONT_FILES = (
    "DejaVuSans.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSans-Oblique.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSerif-Bold.ttf",
    "DejaVuSerif-Italic.ttf",
    "DejaVuSansMono.ttf",
    "DejaVuSansMono-Bold.ttf",
    "STIXGeneral.ttf",
    "STIXGeneralBol.ttf",
    "STIXGeneralItalic.ttf",
)
FONT_NAMES = tuple(f.rsplit(".", 1)[0] for f in FONT_FILES)


@cache
def font_dir() -> Path:
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"


@lru_cache(maxsize=512)
def font(name: str = "DejaVuSans", size: int = 12):
    from PIL import ImageFont

    path = font_dir() / f"{name}.ttf"
    if not path.is_file():
        raise FileNotFoundError(f"font {name!r} not found at {path} (it ships with matplotlib)")
    return ImageFont.truetype(str(path), max(4, int(size)))


def scaled(size: int, px_at_96: float) -> int:
    """A length designed for a 96-pixel canvas, at `size` pixels."""
    return max(1, round(px_at_96 * size / 96))


def contrast_pair(rng: random.Random) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """(background, foreground) colours far enough apart in brightness to stay readable."""
    while True:
        bg = tuple(rng.randint(0, 255) for _ in range(3))
        fg = tuple(rng.randint(0, 255) for _ in range(3))
        if abs(_luma(bg) - _luma(fg)) > 110:
            return bg, fg


def _luma(c) -> float:
    return 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2]


def norm1000(value: float, extent: float) -> int:
    """A pixel coordinate as an integer in [0, 1000] (the GUI action convention)."""
    return max(0, min(1000, round(1000 * value / extent)))


def join_words(items: list[str]) -> str:
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + " and " + items[-1]
