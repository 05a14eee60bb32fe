"""Reasoning-oriented recall (InfiR after DeepSeekMath): find math and code pages among everything.

Per domain: a fastText classifier learns the domain's seed documents against random documents of
the corpus (and the other domains' seeds); it scores every document; documents scored above
`positive_threshold` join the positives and the classifier retrains, `rounds` times. Then
domain-level expansion: a URL prefix (host + first path segments) with enough pages, a large
share of them recalled, gets its other pages reconsidered at the lower `expand_threshold`.
Code must also be a program (it parses, or keeps a source file's layout): documentation pages
full of examples read like code to any classifier, but are pages about programs.
A document's domain is the recalled domain with the highest score, else web.
"""

from __future__ import annotations

import random
from collections import defaultdict
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from infir.curate.config import RecallConfig, RecallSeedSource
from infir.curate.recall.classifier import label_probabilities, normalize, train_supervised


def load_recall_seeds(source: RecallSeedSource, cfg: RecallConfig) -> list[str]:
    import json

    import fsspec

    from infir.curate.recall.seeds import iter_named

    texts: list[str] = []
    for path in source.paths:
        with fsspec.open(path, "rt", compression="infer", encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if line.strip():
                    try:
                        texts.append(json.loads(line)["text"])
                    except (ValueError, KeyError, TypeError) as e:
                        raise ValueError(
                            f"seed file {path}, line {lineno}: no JSON object with `text` ({e})"
                        ) from e
    for src in source.builtin:
        texts += [d["text"] for d in iter_named(src.name, **src.kwargs)]
    return [normalize(t, cfg.max_tokens_per_doc, cfg.windows) for t in texts[: source.limit]]


def url_prefix(url: str | None, depth: int) -> str | None:
    if not url or "://" not in url:
        return None
    parts = urlsplit(url)
    folders = [s for s in parts.path.split("/") if s][:-1]  # the page's own name is not its site
    return "/".join([parts.netloc, *folders[:depth]])


def _train_and_score(
    positives: list[str], negatives: list[str], corpus: list[str], cfg: RecallConfig, seed: int
) -> np.ndarray:
    rows = [f"__label__pos {t}" for t in positives] + [f"__label__neg {t}" for t in negatives]
    random.Random(seed).shuffle(rows)
    model = train_supervised(
        rows, epoch=cfg.epoch, dim=cfg.dim, lr=cfg.lr, word_ngrams=cfg.word_ngrams, seed=seed
    )
    return np.array(label_probabilities(model, corpus, "pos"), dtype=np.float32), model


def recall_domain(
    domain: str,
    corpus: list[str],
    seeds: dict[str, list[str]],
    cfg: RecallConfig,
    seed: int,
    likely: np.ndarray | None = None,
    negative_seeds: list[str] | None = None,
) -> tuple[np.ndarray, list[dict], object]:
    """`likely` marks documents the rule-based guess already takes for this domain: they are kept
    out of the random negatives, which matters when a domain is a large share of the corpus."""
    rng = random.Random(seed)
    positives = list(seeds[domain])
    other_seeds = [t for d, ts in seeds.items() if d != domain for t in ts] + list(negative_seeds or [])
    scores = np.zeros(len(corpus), dtype=np.float32)
    history = []
    model = None
    for round_index in range(cfg.rounds + 1):
        excluded = (scores >= cfg.threshold) if round_index else np.zeros(len(corpus), dtype=bool)
        if likely is not None:
            excluded |= likely
        pool = np.flatnonzero(~excluded).tolist()
        if len(positives) > cfg.max_positives:
            positives = rng.sample(positives, cfg.max_positives)
        n_neg = min(len(pool), int(cfg.negatives_per_positive * len(positives)))
        negatives = [corpus[i] for i in rng.sample(pool, n_neg)] + other_seeds
        scores, model = _train_and_score(positives, negatives, corpus, cfg, seed + round_index)
        recalled = int((scores >= cfg.threshold).sum())
        confident = np.flatnonzero(scores >= cfg.positive_threshold)
        history.append(
            {
                "round": round_index,
                "positives": len(positives),
                "negatives": len(negatives),
                "recalled": recalled,
                "confident": int(len(confident)),
            }
        )
        positives = list(seeds[domain]) + [corpus[i] for i in confident]
    return scores, history, model


def expand_by_prefix(scores: np.ndarray, urls: list[str | None], cfg: RecallConfig) -> np.ndarray:
    """Recalled mask after domain-level expansion."""
    recalled = scores >= cfg.threshold
    groups: dict[str, list[int]] = defaultdict(list)
    for i, url in enumerate(urls):
        prefix = url_prefix(url, cfg.url_prefix_depth)
        if prefix:
            groups[prefix].append(i)
    out = recalled.copy()
    for members in groups.values():
        if len(members) < cfg.expand_min_pages:
            continue
        idx = np.array(members)
        if recalled[idx].mean() >= cfg.expand_min_fraction:
            out[idx] |= scores[idx] >= cfg.expand_threshold
    return out


def load_all_seeds(cfg: RecallConfig) -> dict[str, dict[str, list[str]]]:
    """{"positive": {domain: texts}, "negative": {domain: texts}}, normalised for the classifiers."""
    seeds = {d: load_recall_seeds(cfg.seeds[d], cfg) for d in cfg.domains if d in cfg.seeds}
    missing = [d for d in cfg.domains if not seeds.get(d)]
    if missing:
        raise ValueError(
            f"recall has no seeds for {missing}: give `recall.seeds.<domain>` paths or builtin sources"
        )
    negatives = {
        d: load_recall_seeds(cfg.negative_seeds[d], cfg) for d in cfg.domains if d in cfg.negative_seeds
    }
    return {"positive": seeds, "negative": negatives}


def recall_one(
    domain: str,
    corpus: list[str],
    urls: list[str | None],
    cfg: RecallConfig,
    seed: int,
    guesses: list[str] | None = None,
    model_dir=None,
    programs: list[bool] | None = None,
    seeds: dict | None = None,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """One domain's recall: (scores, recalled mask, report). Independent of the other domains'
    runs (their seeds are its negatives), so domains can run in parallel processes. `seeds` is
    `load_all_seeds(cfg)`, loaded here when not given."""
    seeds = seeds or load_all_seeds(cfg)
    k = cfg.domains.index(domain)
    likely = np.array([g == domain for g in guesses], dtype=bool) if guesses is not None else None
    scores, history, model = recall_domain(
        domain, corpus, seeds["positive"], cfg, seed + 1000 * k, likely, seeds["negative"].get(domain, [])
    )
    recalled = expand_by_prefix(scores, urls, cfg)
    expanded = int(recalled.sum() - (scores >= cfg.threshold).sum())
    not_program = 0
    if domain == "code" and cfg.code_requires_program and programs is not None:
        is_program = np.asarray(programs, dtype=bool)
        not_program = int((recalled & ~is_program).sum())
        recalled &= is_program
    if model_dir is not None:
        model.save_model(str(Path(model_dir) / f"recall_{domain}.bin"))
    return (
        scores,
        recalled,
        {
            "seeds": len(seeds["positive"][domain]),
            "rounds": history,
            "recalled": int(recalled.sum()),
            "expanded": expanded,
            "not_programs": not_program,
        },
    )


def assign_domains(scores: dict[str, np.ndarray], recalled: dict[str, np.ndarray], n: int) -> list[str]:
    """A document's domain is the recalled domain with the highest score, else web."""
    domains = []
    for i in range(n):
        best, best_score = "web", -1.0
        for d in scores:
            if recalled[d][i] and scores[d][i] > best_score:
                best, best_score = d, float(scores[d][i])
        domains.append(best)
    return domains


def run_recall(
    corpus: list[str],
    urls: list[str | None],
    cfg: RecallConfig,
    seed: int,
    guesses: list[str] | None = None,
    model_dir=None,
    programs: list[bool] | None = None,
) -> tuple[list[str], dict[str, np.ndarray], dict]:
    """Returns per-document domains, per-domain scores and a report of the rounds. `guesses` are
    the heuristic step's rule-based kinds (code / math / technical / prose), used only to keep
    likely positives out of the negatives. `programs` marks the documents that are programs
    (`rules.is_program`): with `code_requires_program`, only they can join the code domain, and
    documentation full of examples, which the classifier takes for code, stays web."""
    scores, recalled, report = {}, {}, {"domains": {}}
    seeds = load_all_seeds(cfg)
    for domain in cfg.domains:
        scores[domain], recalled[domain], report["domains"][domain] = recall_one(
            domain, corpus, urls, cfg, seed, guesses, model_dir, programs, seeds
        )
    return assign_domains(scores, recalled, len(corpus)), scores, report
