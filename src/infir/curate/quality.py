"""Quality scoring: a fastText classifier trained from labelled examples, thresholds per domain.

Labels are a JSONL of {"text", "score"} (LLM annotations on a 0-5 scale, as FineWeb-Edu does, or
any integer scale): the classifier learns one class per integer score and a document's quality is
its expected score scaled to [0, 1]. Without labels the step bootstraps a coherence scorer from
what every install has: the recall seeds and Python's documentation as score 1, the same texts
with their words shuffled as score 0, so it only learns that word order makes sense. Documents
scoring under their domain's threshold are dropped.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from datatrove.data import Document

from infir.curate.config import QualityConfig, RecallConfig
from infir.curate.fasttext_utils import distribution, normalize, train_supervised
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
                raise ValueError(f"quality labels {path}, line {lineno}: need `text` and a numeric `score` ({e})") from e
    if len({score for _, score in rows}) < 2:
        raise ValueError(f"quality labels {path}: need at least two distinct scores")
    return rows


def bootstrap_labels(recall: RecallConfig, seed: int, limit: int = 600) -> list[tuple[str, int]]:
    from infir.curate.seeds import iter_named

    rng = random.Random(seed)
    good = [d["text"] for d in iter_named("python_docs", max_docs=limit, seed=seed)]
    for source in recall.seeds.values():
        for src in source.builtin:
            good += [d["text"] for _, d in zip(range(limit // 2), iter_named(src.name, **src.kwargs))]
    rows = [(t, 1) for t in good]
    for text in good:
        words = text.split()
        rng.shuffle(words)
        rows.append((" ".join(words), 0))
    return rows


def train_quality_model(cfg: QualityConfig, recall: RecallConfig, seed: int, out_path: Path) -> dict:
    rows = read_labels(cfg.labels_path) if cfg.labels_path else bootstrap_labels(recall, seed)
    lines = [f"__label__{score} {normalize(text, cfg.max_tokens_per_doc)}" for text, score in rows]
    random.Random(seed).shuffle(lines)
    model = train_supervised(lines, epoch=cfg.epoch, dim=cfg.dim, lr=0.5, word_ngrams=2, seed=seed)
    model.save_model(str(out_path))
    scores = sorted({score for _, score in rows})
    return {"examples": len(rows), "scores": scores, "labels": cfg.labels_path or "bootstrap (shuffled-word negatives)"}


def expected_score(dist: dict[str, float]) -> float:
    """Expected label, scaled to [0, 1] by the largest label."""
    labels = [int(k) for k in dist]
    top = max(labels) or 1
    total = sum(dist.values()) or 1.0
    return sum(int(k) * p for k, p in dist.items()) / total / top


class QualityFilter(CurateStep):
    name = "🏅 quality"
    step_name = "quality"

    def __init__(self, cfg: QualityConfig, model_path: str, removed_dir: str | None = None):
        super().__init__(removed_dir)
        self.cfg = cfg
        self.model_path = model_path
        self._model = None

    def setup(self, rank: int, world_size: int) -> None:
        if self._model is None:
            import fasttext

            self._model = fasttext.load_model(self.model_path)

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        score = expected_score(distribution(self._model, normalize(doc.text, self.cfg.max_tokens_per_doc)))
        doc.metadata["quality"] = round(score, 4)
        domain = doc.metadata.get("domain", "web")
        if score < self.cfg.thresholds.get(domain, 0.0):
            return False, f"low_quality:{domain}"
        return True
