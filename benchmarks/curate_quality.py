"""Quality of `infir curate` on the reference corpus, measured against its labels. Prints one JSON line.

    python benchmarks/curate_quality.py [--workers 2] [--tasks N] [--max-train-docs N] [--out DIR]

`--max-train-docs` below the corpus size checks that classifiers trained on a bounded sample (and
applied in the workers) keep their precision and recall.

Recall seeds are the config defaults (generated math, third-party Python sources): nothing from
the evaluated corpus. Decontamination goes through the evaluation Task registry (see
`curate_common.decontam_setup` for the tasks and why the full MATH test set is left out).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from curate_common import decontam_setup, pair_recall, read_jsonl, read_outputs, shared_dir  # noqa: E402

from infir.curate.config import CurateConfig, SourceConfig  # noqa: E402
from infir.curate.pipeline import run_curate  # noqa: E402


def auc(scores: np.ndarray, positive: np.ndarray) -> float:
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    n_pos, n_neg = positive.sum(), (~positive).sum()
    return (
        float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
        if n_pos and n_neg
        else float("nan")
    )


def evaluate(labels: dict[str, dict], kept: dict, removed: dict) -> dict:
    def removed_by(i):
        return removed[i]["metadata"]["removed_by"] if i in removed else None

    missing = [i for i in labels if i not in kept and i not in removed]
    result: dict = {"docs": len(labels), "unaccounted_docs": len(missing)}
    junk = [i for i, lab in labels.items() if lab["kind"].startswith("junk")]
    per_kind = defaultdict(list)
    for i in junk:
        per_kind[labels[i]["kind"]].append(i not in kept)
    result["junk_removed"] = round(float(np.mean([i not in kept for i in junk])), 4)
    result["junk_removed_by_kind"] = {k: round(float(np.mean(v)), 4) for k, v in sorted(per_kind.items())}
    has_dup = {lab["dup_of"] for lab in labels.values() if lab["dup_of"]}
    clean_removed = {}
    for domain in ("web", "math", "code"):
        ids = [i for i, lab in labels.items() if lab["kind"] == "clean" and lab["domain"] == domain]
        # dedup removing an original whose labelled copy survives is dedup's job, not a wrong removal
        wrong = [i for i in ids if i in removed and not (removed_by(i) == "dedup" and i in has_dup)]
        clean_removed[domain] = round(len(wrong) / len(ids), 4)
    result["clean_removed"] = clean_removed
    result["clean_removed_reasons"] = dict(
        Counter(
            removed[i]["metadata"]["reason"]
            for i, lab in labels.items()
            if lab["kind"] == "clean" and i in removed and not (removed_by(i) == "dedup" and i in has_dup)
        ).most_common(12)
    )
    pairs = pair_recall(labels, set(kept))
    result["dup_pairs_resolved"], result["dup_exact_resolved"], result["dup_near_resolved"] = (
        pairs["pairs"],
        pairs["exact"],
        pairs["near"],
    )
    nodup = [i for i, lab in labels.items() if lab["kind"] == "clean" and i not in has_dup]
    result["clean_nodup_removed_by_dedup"] = round(
        float(np.mean([removed_by(i) == "dedup" for i in nodup])), 4
    )
    contaminated = [i for i, lab in labels.items() if lab["kind"] == "contaminated"]
    result["contaminated_left"] = round(float(np.mean([i in kept for i in contaminated])), 4)
    clean = [i for i, lab in labels.items() if lab["kind"] == "clean"]
    flagged = [i for i in clean if removed_by(i) == "decontam"]
    result["clean_flagged_by_decontam"] = round(len(flagged) / len(clean), 4)
    result["clean_flagged_by_task"] = dict(Counter(removed[i]["metadata"]["reason"] for i in flagged))
    # recall: every document that reached the recall step carries its scores
    reached = {i: r for i, r in {**removed, **kept}.items() if "recall_scores" in r["metadata"]}
    recall = {}
    for domain in ("math", "code"):
        ids = list(reached)
        truth = np.array([labels[i]["domain"] == domain for i in ids])
        pred = np.array([reached[i]["metadata"]["domain"] == domain for i in ids])
        score = np.array([reached[i]["metadata"]["recall_scores"].get(domain, 0.0) for i in ids])
        tp = int((truth & pred).sum())
        recall[domain] = {
            "precision": round(tp / max(pred.sum(), 1), 4),
            "recall": round(tp / max(truth.sum(), 1), 4),
            "auc": round(auc(score, truth), 4),
            "docs": len(ids),
        }
    result["recall"] = recall
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--tasks", type=int)
    parser.add_argument("--max-train-docs", type=int)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    shared = shared_dir()
    corpus = shared / "corpus/refcorpus.jsonl.gz"
    labels = {r["id"]: r for r in read_jsonl(shared / "corpus/refcorpus.labels.jsonl.gz")}
    cfg = CurateConfig(
        sources=[SourceConfig(type="jsonl", paths=[str(corpus)])], workers=args.workers, tasks=args.tasks
    )
    if args.max_train_docs:
        cfg.max_train_docs = args.max_train_docs
    cfg.decontam.tasks, cfg.decontam.data_paths, excluded = decontam_setup(shared)
    out = args.out or Path(tempfile.mkdtemp(prefix="curate-quality-"))
    summary = run_curate(cfg, out, seed=0)
    kept, removed = read_outputs(out)
    result = evaluate(labels, kept, removed)
    result["decontam_tasks"] = cfg.decontam.tasks
    result["decontam_excluded"] = excluded
    result["decontam_index"] = summary["select"].get("decontam", {}).get("index")
    result["seconds"] = summary["totals"]["seconds"]
    result["shards"] = summary["totals"]["shards"]
    result["classifier_sample_docs"] = summary["select"].get("sample_docs")
    result["output"] = str(out)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
