"""Quality scoring: a fastText classifier trained from labelled examples, thresholds per domain.

Labels are a JSONL of {"text", "score"} (LLM annotations on a 0-5 scale, as FineWeb-Edu does, or
any integer scale): the classifier learns one class per integer score and a document's quality is
its expected score scaled to [0, 1].

Without labels the step bootstraps a coherence model from the corpus itself: a sample of its
documents (as the classifiers read them) against the same documents with their tokens shuffled.
It learns what ordered text, code and math look like in this corpus's own styles, and flags
documents that read like word salad (spun or scrambled text the rules let through). It is no
judge of educational value; that needs labels. Its default thresholds are set for it.

The model is trained on the driver from the run's bounded classifier sample (`max_train_docs`
documents, the same for any shard plan); the workers score every document (`ScoreShard`) and the
finishing stage applies the per-domain thresholds.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
from datatrove.data import Document

from infir.curate.config import QualityConfig, RecallConfig
from infir.curate.recall.classifier import distribution, normalize, train_supervised
from infir.curate.steps import CurateStep


def read_labels(path: str) -> list[tuple[str, int]]:
    import fsspec

    rows = []
    with fsspec.open(path, "rt", compression="infer", encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                rows.append((record["text"], int(round(float(record["score"])))))
            except (ValueError, KeyError, TypeError) as e:
                raise ValueError(
                    f"quality labels {path}, line {lineno}: need `text` and a numeric `score` ({e})"
                ) from e
    if len({score for _, score in rows}) < 2:
        raise ValueError(f"quality labels {path}: need at least two distinct scores")
    return rows


def shuffled(text: str, rng: random.Random) -> str:
    tokens = text.split()
    rng.shuffle(tokens)
    return " ".join(tokens)


def bootstrap_rows(texts: list[str], cfg: QualityConfig, seed: int) -> list[str]:
    """Ordered documents as 1, the same documents shuffled as 0 (texts already normalised)."""
    rng = random.Random(seed)
    sample = rng.sample(texts, min(cfg.bootstrap_docs, len(texts)))
    return [f"__label__1 {t}" for t in sample] + [f"__label__0 {shuffled(t, rng)}" for t in sample]


def train_quality_model(
    cfg: QualityConfig, recall: RecallConfig, texts: list[str], seed: int, out_path: Path
) -> dict:
    """Trains on the labels file, or bootstraps from `texts` (the corpus's classifier texts)."""
    if cfg.labels_path:
        labelled = read_labels(cfg.labels_path)
        rows = [
            f"__label__{score} {normalize(text, recall.max_tokens_per_doc, recall.windows)}"
            for text, score in labelled
        ]
        report = {
            "labels": cfg.labels_path,
            "examples": len(rows),
            "scores": sorted({s for _, s in labelled}),
        }
    else:
        rows = bootstrap_rows(texts, cfg, seed)
        report = {
            "labels": "bootstrap: corpus documents against their shuffled tokens",
            "examples": len(rows),
            "scores": [0, 1],
        }
    random.Random(seed).shuffle(rows)
    model = train_supervised(rows, epoch=cfg.epoch, dim=cfg.dim, lr=0.5, word_ngrams=2, seed=seed)
    model.save_model(str(out_path))
    return report


def expected_score(dist: dict[str, float]) -> float:
    """Expected label, scaled to [0, 1] by the largest label."""
    labels = [int(k) for k in dist]
    top = max(labels) or 1
    total = sum(dist.values()) or 1.0
    return sum(int(k) * p for k, p in dist.items()) / total / top


def score_texts(model_path: Path, texts: list[str]) -> np.ndarray:
    from fasttext.FastText import _FastText

    model = _FastText(model_path=str(model_path))  # load_model's only addition is a deprecation notice
    return np.array([expected_score(distribution(model, t)) for t in texts], dtype=np.float32)


class QualityFilter(CurateStep):
    """Applies the per-domain thresholds to the scores the workers computed (`ScoreShard`)."""

    name = "🏅 quality"
    step_name = "quality"

    def __init__(self, cfg: QualityConfig, work, score_columns: int, removed_dir: str | None = None):
        """`work`: the run's `WorkFolder`, where the score stage left the scores."""
        super().__init__(removed_dir)
        self.cfg = cfg
        self.work = work
        self.score_columns = score_columns

    def setup(self, rank: int, world_size: int) -> None:
        from infir.curate.shard_steps import load_scores

        self._scores = load_scores(self.work, rank, self.score_columns)[:, -1]

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        score = round(float(self._scores[doc.metadata["_index"]]), 4)
        doc.metadata["quality"] = score
        domain = doc.metadata.get("domain", "web")
        if score < self.cfg.thresholds.get(domain, 0.0):
            return False, f"low_quality:{domain}"
        return True
