"""The image-text filter: drop pairs whose similarity under a dual encoder is below a threshold.

InfiR-VL cleaned its image-text pairs with an image-text similarity model, dropping pairs under 0.5.
Real runs load a SigLIP (or CLIP) dual encoder by name, `google/siglip-so400m-patch14-384`; the
score is SigLIP's own match probability, sigmoid(exp(t) * cos + b), or a CLIP model's cosine.
Where no model can be downloaded (tests, the tiny recipe) a tiny SigLIP is trained for a few hundred
steps on generated caption pairs and its match probability calibrated (see `train_dual_encoder`);
its vision tower then also serves as the VL model's pretrained encoder, as so400m does at real scale.

The filter is measured on held-out pairs against the same images with shuffled captions: the
precision and recall of "drop" on the mismatched pairs, and the share of true pairs kept.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F

from infir.train.callbacks import Callback
from infir.train.config import OptimizerConfig, ScheduleConfig, TrainConfig
from infir.vl.config import CAPTION_KINDS, DualEncoderConfig


@dataclass
class SimilarityScorer:
    model: object
    tokenizer: object
    image_processor: object
    max_text_tokens: int
    kind: Literal["sigmoid", "cosine"]
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @classmethod
    def from_pretrained(cls, name_or_path: str, score: str = "auto", device: str = "cpu") -> SimilarityScorer:
        from transformers import AutoImageProcessor, AutoModel, AutoTokenizer

        model = AutoModel.from_pretrained(name_or_path, dtype=torch.float32).to(device).eval()
        tokenizer = AutoTokenizer.from_pretrained(name_or_path)
        image_processor = AutoImageProcessor.from_pretrained(name_or_path)
        text_config = getattr(model.config, "text_config", model.config)
        kind = score if score != "auto" else ("sigmoid" if hasattr(model, "logit_bias") else "cosine")
        return cls(
            model,
            tokenizer,
            image_processor,
            int(text_config.max_position_embeddings),
            kind,
            torch.device(device),
        )

    def encode_texts(self, texts: list[str]) -> dict:
        # SigLIP pools the last position and was trained on texts padded to a fixed length.
        enc = self.tokenizer(
            texts, padding="max_length", truncation=True, max_length=self.max_text_tokens, return_tensors="pt"
        )
        return {"input_ids": enc["input_ids"].to(self.device)}

    @torch.no_grad()
    def scores(self, images: list, texts: list[str], batch_size: int = 64) -> list[float]:
        from infir.model.vlm_inputs import open_image

        out: list[float] = []
        for i in range(0, len(images), batch_size):
            pix = self.image_processor(
                [open_image(im) for im in images[i : i + batch_size]], return_tensors="pt"
            )["pixel_values"].to(self.device)
            img = _unit(_features(self.model.get_image_features(pixel_values=pix)))
            txt = _unit(
                _features(self.model.get_text_features(**self.encode_texts(texts[i : i + batch_size])))
            )
            cos = (img * txt).sum(-1)
            if self.kind == "sigmoid":
                cos = torch.sigmoid(cos * self.model.logit_scale.exp() + self.model.logit_bias)
            out += cos.tolist()
        return out

    def save(self, out: Path) -> None:
        self.model.save_pretrained(out)
        self.tokenizer.save_pretrained(out)
        self.image_processor.save_pretrained(out)


def _features(out) -> torch.Tensor:
    return out if torch.is_tensor(out) else out.pooler_output


def _unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-8)


def caption_pairs(
    generator_names: list[str],
    n: int,
    seed: int,
    split: str,
    size: int,
    generator_options: dict[str, dict] | None = None,
) -> tuple[list, list[str]]:
    from infir.data.images import generate

    generator_options = generator_options or {}
    images, texts = [], []
    for name in generator_names:
        if name not in CAPTION_KINDS:
            raise ValueError(f"filter: generator {name!r} has no caption kind; use {sorted(CAPTION_KINDS)}")
        for g in generate(name, n, seed, split, size, options=generator_options.get(name)):
            images.append(g.image)
            texts.append(next(qa.answer for qa in g.qas if qa.kind == CAPTION_KINDS[name]))
    return images, texts


def build_dual_encoder(cfg: DualEncoderConfig, vision_config, tokenizer):
    from transformers import SiglipConfig, SiglipModel, SiglipTextConfig

    text = SiglipTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=cfg.text_hidden_size,
        intermediate_size=4 * cfg.text_hidden_size,
        num_hidden_layers=cfg.text_layers,
        num_attention_heads=cfg.text_heads,
        max_position_embeddings=cfg.max_text_tokens,
        projection_size=vision_config.hidden_size,  # both towers embed in one space
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    vision = vision_config.to_dict()
    vision["vision_use_head"] = True  # the pooled image embedding the contrastive loss needs
    model = SiglipModel(SiglipConfig(text_config=text.to_dict(), vision_config=vision))
    with torch.no_grad():  # CLIP's initial temperature, 1 / 0.07; the bias is fitted after training
        model.logit_scale.fill_(math.log(1 / 0.07))
        model.logit_bias.zero_()
    return model


class ContrastiveObjective:
    """CLIP's symmetric softmax contrastive loss over in-batch negatives, as the trainer's objective.

    The loss of a row depends on every other row of its batch, so a batch is one unit: `count` is 1 and
    the batch must not be cut into micro-batches (`micro_batch_size` equals the batch size). Under
    several ranks each rank's batch has its own negatives and the ranks' losses are averaged.
    """

    def forward(self, model, micro: dict, device: torch.device) -> torch.Tensor:
        img = _unit(_features(model.get_image_features(pixel_values=micro["pixel_values"].to(device))))
        txt = _unit(_features(model.get_text_features(input_ids=micro["input_ids"].to(device))))
        return txt @ img.T * model.logit_scale.exp()

    def count(self, batch: dict) -> float:
        return 1.0

    def loss_sum(self, outputs: torch.Tensor, micro: dict) -> torch.Tensor:
        target = torch.arange(outputs.size(0), device=outputs.device)
        return (F.cross_entropy(outputs, target) + F.cross_entropy(outputs.T, target)) / 2

    def pop_metrics(self) -> dict:
        return {}


class CaptionBatches:
    """Batches of (image, caption) pairs, no caption twice in a batch, drawn by a seeded RNG whose state
    is the resume state."""

    def __init__(
        self, images: list, ids: torch.Tensor, texts: list[str], image_processor, size: int, seed: int
    ):
        self.images, self.ids, self.texts, self.image_processor = images, ids, texts, image_processor
        self.size, self.rng = size, random.Random(seed)

    def __iter__(self):
        while True:
            batch = _distinct_text_batch(self.texts, self.size, self.rng)
            pixels = self.image_processor([self.images[i] for i in batch], return_tensors="pt")[
                "pixel_values"
            ]
            yield {"input_ids": self.ids[batch], "pixel_values": pixels}

    def state_dict(self) -> dict:
        return {"rng": self.rng.getstate()}

    def load_state_dict(self, state: dict) -> None:
        self.rng.setstate(state["rng"])


def dual_encoder_train_config(cfg: DualEncoderConfig, progress: bool = True) -> TrainConfig:
    return TrainConfig(
        max_steps=cfg.steps,
        global_batch_size=cfg.batch_size,
        micro_batch_size=cfg.batch_size,  # a contrastive batch is not cut (see ContrastiveObjective)
        seq_len=cfg.max_text_tokens,
        precision="fp32",
        log_every=10,
        progress=progress,
        save_every=cfg.save_every,
        optimizer=OptimizerConfig(lr=cfg.lr, weight_decay=0.01, grad_clip=1.0),
        schedule=ScheduleConfig(kind="cosine", warmup_steps=cfg.warmup_steps, min_lr_ratio=0.1),
    )


def train_dual_encoder(
    cfg: DualEncoderConfig,
    vision_config,
    tokenizer,
    image_processor,
    seed: int,
    size: int,
    out_dir: Path,
    device: torch.device = torch.device("cpu"),
    progress: bool = True,
    callbacks: Sequence[Callback] = (),
) -> SimilarityScorer:
    """A tiny SigLIP trained on generated (image, caption) pairs, then calibrated to score pairs.

    Trained through `infir.train.fit` (checkpoints, metrics.jsonl, resume in `out_dir`) on one process:
    under torchrun the caller trains it on rank 0 only. Representation: the symmetric softmax contrastive
    loss (CLIP's). At this size and step count SigLIP's own sigmoid loss barely moves (held-out matched and
    shuffled pairs keep equal cosines after the steps in which the softmax loss already separates them).
    Scoring: SigLIP's head, sigmoid(exp(t) * cos + b), with t and b then fitted by logistic regression on
    matched vs shuffled training pairs, so that 0.5 means "as likely matched as not".
    """
    from infir.train.fit import fit
    from infir.train.parallel import DistInfo

    torch.manual_seed(seed)
    images, texts = caption_pairs(
        cfg.generators, cfg.pairs_per_generator, seed, "train", size, cfg.generator_options
    )
    model = build_dual_encoder(cfg, vision_config, tokenizer)
    scorer = SimilarityScorer(model, tokenizer, image_processor, cfg.max_text_tokens, "sigmoid", device)
    ids = scorer.encode_texts(texts)["input_ids"].cpu()
    data = CaptionBatches(images, ids, texts, image_processor, cfg.batch_size, seed)
    fit(
        dual_encoder_train_config(cfg, progress),
        model,
        tokenizer,
        data,
        out_dir,
        DistInfo(device=device),
        objective=ContrastiveObjective(),
        callbacks=callbacks,
    )
    model.eval()
    calibrate(scorer, images, texts, data.rng)
    return scorer


def calibrate(
    scorer: SimilarityScorer, images: list, texts: list[str], rng: random.Random, pairs: int = 512
) -> None:
    """Fit SigLIP's (t, b) so sigmoid(exp(t) * cos + b) predicts matched vs shuffled on training pairs."""
    picked = rng.sample(range(len(texts)), min(pairs, len(texts)))
    shuffled = [_other_text(texts, i, rng) for i in picked]
    imgs = [images[i] for i in picked]
    scorer.kind = "cosine"
    cos = torch.tensor(scorer.scores(imgs, [texts[i] for i in picked]) + scorer.scores(imgs, shuffled))
    labels = torch.cat([torch.ones(len(picked)), torch.zeros(len(picked))])
    log_a, b = torch.zeros((), requires_grad=True), torch.zeros((), requires_grad=True)
    opt = torch.optim.LBFGS([log_a, b], max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.binary_cross_entropy_with_logits(log_a.exp() * cos + b, labels)
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        scorer.model.logit_scale.fill_(log_a.item())
        scorer.model.logit_bias.fill_(b.item())
    scorer.kind = "sigmoid"


def _other_text(texts: list[str], i: int, rng: random.Random) -> str:
    j = rng.randrange(len(texts))
    while texts[j] == texts[i]:
        j = rng.randrange(len(texts))
    return texts[j]


def _distinct_text_batch(texts: list[str], size: int, rng: random.Random) -> list[int]:
    # Two images with the same caption in one batch would be pushed apart as a "negative" pair.
    picked, seen = [], set()
    while len(picked) < min(size, len(set(texts))):
        i = rng.randrange(len(texts))
        if texts[i] not in seen:
            seen.add(texts[i])
            picked.append(i)
    return picked


def measure(
    scorer: SimilarityScorer, images: list, texts: list[str], threshold: float, batch_size: int, seed: int
) -> dict:
    """Precision/recall of dropping mismatched pairs: each image with its caption and with another's."""
    rng = random.Random(seed)
    shuffled = [_other_text(texts, i, rng) for i in range(len(texts))]
    true_scores = scorer.scores(images, texts, batch_size)
    false_scores = scorer.scores(images, shuffled, batch_size)
    return drop_metrics(true_scores, false_scores, threshold)


def drop_metrics(true_scores: list[float], false_scores: list[float], threshold: float) -> dict:
    dropped_false = sum(s < threshold for s in false_scores)
    dropped_true = sum(s < threshold for s in true_scores)
    dropped = dropped_false + dropped_true
    return {
        "pairs": len(true_scores),
        "mismatched": len(false_scores),
        "threshold": threshold,
        "precision": round(dropped_false / dropped, 4) if dropped else None,
        "recall": round(dropped_false / len(false_scores), 4) if false_scores else None,
        "true_pairs_kept": round(1 - dropped_true / len(true_scores), 4) if true_scores else None,
        "mean_true_score": round(sum(true_scores) / len(true_scores), 4) if true_scores else None,
        "mean_mismatched_score": round(sum(false_scores) / len(false_scores), 4) if false_scores else None,
    }


def filter_pairs(
    scorer: SimilarityScorer, conversations: list, threshold: float, batch_size: int
) -> tuple[list, dict]:
    """Keep the conversations whose (first image, caption) pair scores at least `threshold`.

    The caption is `meta["caption"]` when the source set one, else the first assistant turn (caption
    datasets are single-turn). Conversations without an image pass through unscored.
    """
    scored = [c for c in conversations if c.images]
    texts = [
        c.meta.get("caption") or next(m["content"] for m in c.messages if m["role"] == "assistant")
        for c in scored
    ]
    scores = scorer.scores([c.images[0] for c in scored], texts, batch_size)
    keep_ids = {id(c) for c, s in zip(scored, scores) if s >= threshold}
    kept = [c for c in conversations if not c.images or id(c) in keep_ids]
    dropped = [c for c in scored if id(c) not in keep_ids]
    stats = {"scored": len(scored), "dropped": len(dropped), "kept": len(kept)}
    corrupted = [c for c in scored if c.meta.get("corrupted")]
    if corrupted:  # generated noise we injected: how well the filter finds it
        caught = sum(1 for c in dropped if c.meta.get("corrupted"))
        stats.update(
            {
                "corrupted": len(corrupted),
                "corrupted_dropped": caught,
                "precision": round(caught / len(dropped), 4) if dropped else None,
                "recall": round(caught / len(corrupted), 4),
            }
        )
    return kept, stats
