"""Generated images with questions and answers for the tiny VL curriculum, each with a held-out split.

    from infir.data.images import generate
    images = generate("gui", n=500, seed=0, split="train", size=96)
    images[0].image, images[0].qas[0].question, images[0].qas[0].answer

Generators: `shapes` (captions; counting, colour, shape, position QA), `charts` (matplotlib bar
charts: read a value, highest/lowest, compare), `text` (rendered words and sentences: OCR), `gui`
(app screens: instructions -> click/type/scroll actions, plus perception questions), `math`
(figures with numbers, solved step by step).
"""

from __future__ import annotations

from infir.data.images import charts, gui, shapes, text
from infir.data.images import math as math_figures
from infir.data.images.common import QA, GeneratedImage, ImageGenerator, Split, is_heldout, iter_specs

GENERATORS: dict[str, ImageGenerator] = {
    g.name: g
    for g in (shapes.GENERATOR, charts.GENERATOR, text.GENERATOR, gui.GENERATOR, math_figures.GENERATOR)
}


def get_generator(name: str) -> ImageGenerator:
    if name not in GENERATORS:
        raise KeyError(f"unknown image generator {name!r}; known: {sorted(GENERATORS)}")
    return GENERATORS[name]


def generate(
    name: str,
    n: int,
    seed: int,
    split: Split = "train",
    size: int = 96,
    heldout_fraction: float = 0.2,
    draw: bool = True,
    options: dict | None = None,
) -> list[GeneratedImage]:
    """`n` images of `split` with distinct content keys, deterministic in every argument.

    `draw=False` skips the pixels (`image` is None) when only the questions are needed. `options` set
    the generator's difficulty (e.g. `text`: vocabulary, words, font sizes, rotation); None: its defaults.
    """
    if split not in ("train", "heldout"):
        raise ValueError(f"split must be 'train' or 'heldout', got {split!r}")
    if not 0 < heldout_fraction < 1:
        raise ValueError(f"heldout_fraction must be in (0, 1), got {heldout_fraction}")
    gen = get_generator(name)
    settings = gen.make_options(options)
    share = heldout_fraction if split == "heldout" else 1 - heldout_fraction
    patience = int(200 / share)
    out = []
    for spec in iter_specs(gen, seed, split, heldout_fraction, patience, settings):
        out.append(gen.render(spec, size, draw))
        if len(out) == n:
            return out
    raise ValueError(
        f"generator {name!r}: found only {len(out)} distinct {split} images (asked for {n}; "
        f"{patience} draws in a row brought nothing new); lower n"
    )


__all__ = ["GENERATORS", "QA", "GeneratedImage", "ImageGenerator", "generate", "get_generator", "is_heldout"]
