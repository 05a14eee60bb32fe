"""A curriculum stage's data: its sources as conversations, with simulated noise and the filter applied.

Generated sources draw train-split images only (held-out content is never drawn); by default one
seed per generator, so stages that use a generator share its images (drawn once, in an ImagePool)
and ask different questions about them, as real curricula reuse image collections. A generated
source may swap a share of its captions between images (`corrupt_fraction`): the mismatched pairs
a web crawl would hold, which the image-text filter is then measured on.

A stage's `replay` mixes in conversations of earlier stages, rebuilt from those stages' own sources
(same seeds, so the same images and questions they trained on, filtered alike), sampled to the
share asked for.
"""

from __future__ import annotations

import random
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace

from infir.sft.data import LoadReport
from infir.vl.config import CAPTION_KINDS, CurriculumPhase, VLSource
from infir.vl.data import (
    VLConversation,
    from_generated,
    image_as_text,
    load_hf_conversations,
    load_llava_json,
)


class ImagePool:
    """Generated train images shared by the stages of a run: a later stage asking for images of the same
    generator and seed gets the same ones (new questions about them) without drawing them again."""

    def __init__(self, size: int, heldout_fraction: float):
        self.size, self.heldout_fraction = size, heldout_fraction
        self._pools: dict[tuple, list] = {}

    def get(self, name: str, n: int, seed: int, draw: bool = True, options: dict | None = None) -> list:
        from infir.data.images import generate

        key = (name, seed, draw, repr(sorted((options or {}).items())))
        have = self._pools.get(key, [])
        if len(have) < n:
            have = generate(name, n, seed, "train", self.size, self.heldout_fraction, draw, options)
            self._pools[key] = have
        # Copies: corrupting captions for one source must not change the images other sources share.
        return [replace(g, qas=list(g.qas)) for g in have[:n]]


def source_seed(recipe_seed: int, src: VLSource) -> int:
    """A source's generation seed: explicit, or one per generator (stages then share its images)."""
    return (
        src.seed
        if src.seed is not None
        else recipe_seed * 1_000_003 + zlib.crc32(src.generator.encode()) % 10_007
    )


def generated_conversations(src: VLSource, seed: int, pool: ImagePool) -> list[VLConversation]:
    images = pool.get(src.generator, src.n, seed, draw=not src.image_as_text, options=src.options)
    caption_kind = CAPTION_KINDS.get(src.generator)
    rng = random.Random(seed)
    corrupted = (
        _corrupt_captions(images, caption_kind, src.corrupt_fraction, rng) if src.corrupt_fraction else set()
    )
    out = []
    for i, image in enumerate(images):
        conv = from_generated(image, src.kinds, src.max_turns, rng, keep_kind=caption_kind)
        if conv is None:
            continue
        if caption_kind is not None:
            conv.meta["caption"] = next(qa.answer for qa in image.qas if qa.kind == caption_kind)
        conv.meta["corrupted"] = i in corrupted
        out.append(image_as_text(conv, image.view) if src.image_as_text else conv)
    return out


def _corrupt_captions(images, caption_kind: str | None, fraction: float, rng: random.Random) -> set[int]:
    """Rotate the captions of a random share of images among themselves; returns the indices changed."""
    if caption_kind is None:
        raise ValueError(f"generator {images[0].generator!r} has no captions to corrupt")
    chosen = sorted(rng.sample(range(len(images)), max(2, round(fraction * len(images)))))
    positions = [next(j for j, qa in enumerate(images[i].qas) if qa.kind == caption_kind) for i in chosen]
    texts = [images[i].qas[j].answer for i, j in zip(chosen, positions)]
    changed = set()
    for k, (i, j) in enumerate(zip(chosen, positions)):
        new = texts[(k + 1) % len(texts)]
        if new != texts[k]:
            images[i].qas[j] = replace(images[i].qas[j], answer=new)
            changed.add(i)
    return changed


def stage_conversations(
    stage: CurriculumPhase,
    recipe_seed: int,
    pool: ImagePool,
    on_bad_record: str,
    scorer=None,
    threshold: float = 0.5,
    batch_size: int = 64,
    log=print,
) -> tuple[list[VLConversation], dict]:
    """Every source of the stage, filtered where asked; returns the conversations and per-source stats."""
    from infir.vl.filter import filter_pairs

    conversations, stats = [], {}
    for j, src in enumerate(stage.data):
        label = f"{j}:{src.generator or src.name or src.path}"
        report = LoadReport()
        if src.type == "generated":
            convs = generated_conversations(src, source_seed(recipe_seed, src), pool)
            report.kept = len(convs)
        elif src.type == "llava_json":
            convs = load_llava_json(src.path, src.image_folder, src.limit, on_bad_record, report=report)
        else:
            convs = load_hf_conversations(
                src.name,
                src.subset,
                src.split,
                src.limit,
                src.image_field,
                src.data_files,
                on_bad_record,
                report,
            )
        entry = {"loaded": report.to_dict()}
        if src.filter:
            if scorer is None:
                raise ValueError(f"stage {stage.name}: source {label} asks for the filter, but none is built")
            convs, entry["filter"] = filter_pairs(scorer, convs, threshold, batch_size)
            log(f"  {label}: filter kept {entry['filter']['kept']} of {entry['filter']['scored']} pairs")
        entry["conversations"] = len(convs)
        entry["turns"] = dict(Counter(k for c in convs for k in c.meta.get("kinds", [])))
        stats[label] = entry
        conversations += convs
    return conversations, stats


def tokenizer_texts(stages: list[CurriculumPhase], seed: int, per_generator: int = 2000) -> Iterator[str]:
    """Every text the curriculum's generators write, views included (the tiny tokenizer's corpus)."""
    from infir.data.images import generate

    names = sorted({src.generator for s in stages for src in s.data if src.type == "generated"})
    for name in names:
        for image in generate(name, per_generator, seed + 7, draw=False):
            yield image.view
            for qa in image.qas:
                yield qa.question + "\n" + qa.answer


def replay_conversations(
    stage: CurriculumPhase,
    stages: list[CurriculumPhase],
    own: int,
    recipe_seed: int,
    pool: ImagePool,
    on_bad_record: str,
    scorer=None,
    threshold: float = 0.5,
    batch_size: int = 64,
    log=print,
) -> tuple[list[VLConversation], dict]:
    """Conversations of the earlier stages `stage.replay` names, each its share of the mix with the stage's
    `own` conversations (share / (1 - all shares) * own of them), none repeated before all were drawn."""
    by_name = {s.name: s for s in stages}
    rest = 1 - sum(stage.replay.values())
    out, stats = [], {}
    for name, share in stage.replay.items():
        earlier, _ = stage_conversations(
            by_name[name],
            recipe_seed,
            pool,
            on_bad_record,
            scorer,
            threshold,
            batch_size,
            log=lambda *_: None,
        )
        want = round(own * share / rest)
        if not earlier or not want:
            stats[name] = {"conversations": 0, "of": len(earlier)}
            continue
        rng = random.Random(recipe_seed * 1_000_003 + zlib.crc32(f"{stage.name}<-{name}".encode()))
        picked: list[VLConversation] = []
        while len(picked) < want:
            order = list(range(len(earlier)))
            rng.shuffle(order)
            picked += [earlier[i] for i in order[: want - len(picked)]]
        for conv in picked:
            conv.meta = dict(conv.meta, replay=name)
        out += picked
        stats[name] = {
            "conversations": len(picked),
            "of": len(earlier),
            "turns": dict(Counter(k for c in picked for k in c.meta.get("kinds", []))),
        }
        log(f"  replay {name}: {len(picked)} of its {len(earlier)} conversations")
    return out, stats
