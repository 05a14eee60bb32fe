"""LLM quality annotation -> infir's quality classifier: does the classifier recover the teacher's ranking?

    python benchmarks/quality_annotation.py [--annotate 4000] [--heldout 2000] [--concurrency 16]
                                            [--latency 0.02] [--noise 0.5] [--seed 0] [--serial-docs 300]

A loopback OpenAI-compatible server plays the annotator. It scores each document it is sent with a
HIDDEN rule of the reference corpus (`../shared/corpus`): junk documents (by their label) score near 0;
the others 0.8 plus the share of their lines that carry math (x 2.2) or code (x 1.6) plus up to 1.2 for
length, capped at 5; its reply states round(rule + Gaussian noise of sd `--noise`) as "Educational
score: N" (seeded per document). It demands an API key, which the client reads from an environment
variable.

The `inputs` stage (the real one, through a recipe) samples `--annotate` documents of the corpus,
asks the server, and writes the {"text", "score"} labels; curate's own `train_quality_model` trains on
them, and `score_texts` scores `--heldout` other documents (split by duplicate group, so no near
duplicate of a held-out document is annotated). Measured on the held-out documents:

- `spearman`: rank correlation between the classifier's score and the hidden rule (noise-free);
  `spearman_teacher_labels` is that of the teacher's own noisy integer labels (what a perfect student
  of the labels could reach), `spearman_bootstrap` that of the model curate trains without labels
  (corpus documents against their shuffled tokens: the peer);
- the kept sets at infir-1b's `curate.quality.thresholds` (per domain; junk counts as web): the
  classifier's score is the expected label over the largest label (5 here), so a threshold t keeps
  documents the rule scores >= 5t (0.5 -> 2.5): `kept_jaccard`, `kept_precision`, `kept_recall`;
- `requests_per_s`: requests the teacher client sent per second of annotation, against a server that
  takes `--latency` s per answer (in this process, on threads); `speedup_vs_concurrency_1` against the
  same client sending one request at a time (`--serial-docs` documents, a cache of their own);
- `rerun_requests`: what a `--force` rerun of the stage sent (the request cache answers: must be 0),
  `repeated_requests`: answers the server gave twice for one body;
- `key_in_files`: files under the work folder that hold the key's value (must be 0).

Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import random
import re
import secrets
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
KEY_ENV = "INFIR_BENCH_ANNOTATOR_KEY"
_MATH = re.compile(r"\\[A-Za-z]+|\$|\d\s*[-+*/^=<>]\s*\(?\d|[=<>]\s*-?\d|\b[a-z]\s*[=^]\s*\S")
_CODE = re.compile(
    r"^(?: {2,}|\t)\S|^\s*(?:def|class|return|import|from|for|while|if|elif|else|try|except"
    r"|#include|public|private|var|let|const|function)\b|[;{}]\s*$|^\s*[>$] \w|\w\(.*\)\s*$"
)
_EXTRACT = re.compile(r"The extract:\n(.*)\n\nAfter examining the extract:", re.DOTALL)


def _unit(salt: str) -> random.Random:
    return random.Random(int.from_bytes(hashlib.sha256(salt.encode()).digest()[:8], "big"))


class HiddenRule:
    """The annotator's private judgement of a text, and its noisy, integer statement of it."""

    def __init__(self, junk: set[str], noise: float, seed: int):
        self.junk, self.noise, self.seed = junk, noise, seed
        self.asked = 0

    @staticmethod
    def key(text: str) -> str:
        return hashlib.sha256(" ".join(text.split()).encode()).hexdigest()

    def score(self, text: str) -> float:
        if self.key(text) in self.junk:
            return 0.3
        lines = [ln for ln in text.splitlines() if ln.strip()] or [""]
        math = sum(bool(_MATH.search(ln)) for ln in lines) / len(lines)
        code = sum(bool(_CODE.search(ln)) for ln in lines) / len(lines)
        return min(5.0, 0.8 + 2.2 * math + 1.6 * code + 1.2 * min(1.0, len(text.split()) / 400))

    def label(self, text: str) -> int:
        noisy = self.score(text) + _unit(f"{self.seed}|{self.key(text)}").gauss(0.0, self.noise)
        return int(min(5, max(0, round(noisy))))

    def __call__(self, body: dict) -> str:
        """A chat completion: the extract is read back out of the prompt, as a model would read it."""
        self.asked += 1
        prompt = body["messages"][-1]["content"]
        found = _EXTRACT.search(prompt)
        if not found:
            return "I cannot find an extract to score."
        n = self.label(found.group(1))
        style = "Educational score: {n}" if n % 2 else "**Educational score:** {n}"
        return f"The extract is judged on its own merits.\n{style.format(n=n)}"


def load_corpus(shared: Path) -> tuple[list[dict], dict[str, dict]]:
    with gzip.open(shared / "corpus" / "refcorpus.jsonl.gz", "rt") as f:
        docs = [json.loads(line) for line in f]
    with gzip.open(shared / "corpus" / "refcorpus.labels.jsonl.gz", "rt") as f:
        labels = {r["id"]: r for r in map(json.loads, f)}
    return docs, labels


def split(
    docs: list[dict], labels: dict[str, dict], heldout: int, seed: int
) -> tuple[list[dict], list[dict]]:
    """Held-out documents by duplicate group (a document and its duplicates fall on one side)."""

    def group(d: dict) -> str:
        return (labels.get(d["id"]) or {}).get("dup_of") or d["id"]

    groups = sorted({group(d) for d in docs}, key=lambda g: hashlib.sha256(f"{seed}|{g}".encode()).digest())
    chosen, out = set(), []
    by_group: dict[str, list[dict]] = {}
    for d in docs:
        by_group.setdefault(group(d), []).append(d)
    for g in groups:
        if len(out) >= heldout:
            break
        chosen.add(g)
        out.extend(by_group[g])
    return [d for d in docs if group(d) not in chosen], out[:heldout]


def spearman(a, b) -> float:
    """Pearson correlation of the ranks, ties sharing their average rank."""
    import pandas as pd

    ra = pd.Series(np.asarray(a, dtype=float)).rank().to_numpy()
    rb = pd.Series(np.asarray(b, dtype=float)).rank().to_numpy()
    return float(np.corrcoef(ra, rb)[0, 1])


def files_holding(root: Path, needle: str) -> list[str]:
    raw = needle.encode()
    return [str(p) for p in root.rglob("*") if p.is_file() and raw in p.read_bytes()]


def measure(
    shared: Path,
    work: Path,
    *,
    annotate: int,
    heldout: int,
    concurrency: int = 16,
    latency: float = 0.0,
    noise: float = 0.5,
    seed: int = 0,
    batch: int = 1024,
    bootstrap_peer: bool = True,
    serial_docs: int = 0,
) -> dict:
    from infir.config import Recipe, load_recipe
    from infir.curate.config import QualityConfig, RecallConfig
    from infir.curate.recall.classifier import normalize
    from infir.curate.filters.quality import score_texts, train_quality_model
    from infir.run import run_stage
    from infir.stages import STAGES
    from infir.synth.loopback import LoopbackServer

    docs, labels = load_corpus(shared)
    max_chars = 6000
    junk = {
        HiddenRule.key(d["text"][:max_chars])
        for d in docs
        if (labels.get(d["id"]) or {}).get("domain") == "junk"
    }
    pool, held = split(docs, labels, heldout, seed)
    work.mkdir(parents=True, exist_ok=True)
    pool_path = work / "pool.jsonl"
    with pool_path.open("w") as f:
        for d in pool:
            f.write(json.dumps({"id": d["id"], "text": d["text"], "url": d.get("url")}) + "\n")

    rule = HiddenRule(junk, noise, seed)
    key = secrets.token_hex(16)
    os.environ[KEY_ENV] = key
    out_path = work / "seeds" / "quality_annotations.jsonl"
    run_dir = work / "run"
    with LoopbackServer(rule, api_key=key, latency=latency) as server:

        def recipe_for(size: int, out: Path, threads: int) -> Recipe:
            annotate_cfg = {
                "sample": {
                    "sources": [{"paths": [str(pool_path)]}],
                    "size": size,
                    "seed": seed,
                    "out": str(out),
                },
                "teacher": {
                    "type": "openai",
                    "base_url": server.url,
                    "model": "hidden-rule",
                    "api_key_env": KEY_ENV,
                    "concurrency": threads,
                    "temperature": 0.0,
                    "max_tokens": 64,
                    "max_retries": 2,
                },
                "max_chars": max_chars,
                "batch": batch,
            }
            return Recipe.model_validate(
                {"name": "quality-annotation", "stages": ["inputs"], "inputs": {"annotate": annotate_cfg}}
            )

        recipe = recipe_for(annotate, out_path, concurrency)
        t0 = time.perf_counter()
        summary = run_stage(recipe, STAGES["inputs"], run_dir, log=lambda *a: None)["outputs"]["annotate"]
        stage_seconds = time.perf_counter() - t0
        received_first = server.stats.received
        rerun = run_stage(recipe, STAGES["inputs"], run_dir, force=True, log=lambda *a: None)["outputs"][
            "annotate"
        ]
        rerun_requests = server.stats.received - received_first
        repeated = server.stats.repeated
        if serial_docs:  # the peer: one request at a time, its own run directory and so its own cache
            serial = run_stage(
                recipe_for(serial_docs, work / "serial.jsonl", 1),
                STAGES["inputs"],
                work / "serial-run",
                log=lambda *a: None,
            )["outputs"]["annotate"]
    labelled = [json.loads(line) for line in out_path.read_text().splitlines()]

    recall_cfg = RecallConfig()
    qcfg = QualityConfig(labels_path=str(out_path))
    t0 = time.perf_counter()
    report = train_quality_model(qcfg, recall_cfg, [], seed, work / "quality.bin")
    train_seconds = time.perf_counter() - t0
    held_norm = [normalize(d["text"], recall_cfg.max_tokens_per_doc, recall_cfg.windows) for d in held]
    predicted = score_texts(work / "quality.bin", held_norm)
    hidden = np.array([rule.score(d["text"][:max_chars]) for d in held])
    teacher_labels = np.array([rule.label(d["text"][:max_chars]) for d in held])

    thresholds = load_recipe(REPO / "recipes" / "infir-1b.yaml").curate.quality.thresholds
    top = max(report["scores"])
    domain = [(labels.get(d["id"]) or {}).get("domain", "web") for d in held]
    thr = np.array([thresholds.get(dm, thresholds.get("web", 0.0)) for dm in domain])
    kept_clf, kept_rule = predicted >= thr, hidden >= thr * top
    both = int((kept_clf & kept_rule).sum())
    figures = {
        "annotated": len(labelled),
        "heldout": len(held),
        "label_counts": summary["scores"],
        "unparsed": summary["unparsed"],
        "failed": summary["failed"],
        "spearman": round(spearman(predicted, hidden), 4),
        "spearman_teacher_labels": round(spearman(teacher_labels, hidden), 4),
        "thresholds": thresholds,
        "classifier_scale_top_label": top,
        "kept_rule": int(kept_rule.sum()),
        "kept_classifier": int(kept_clf.sum()),
        "kept_jaccard": round(both / max(1, int((kept_clf | kept_rule).sum())), 4),
        "kept_precision": round(both / max(1, int(kept_clf.sum())), 4),
        "kept_recall": round(both / max(1, int(kept_rule.sum())), 4),
        "requests_sent": summary["requests"]["sent"],
        "requests_per_s": summary["requests"]["sent_per_second"],
        "stage_seconds": round(stage_seconds, 2),
        "concurrency": concurrency,
        "latency_s": latency,
        "rerun_requests": rerun_requests,
        "rerun_from_cache": rerun["requests"]["cached"],
        "repeated_requests": repeated,
        "train_seconds": round(train_seconds, 2),
    }
    if serial_docs:
        figures["requests_per_s_concurrency_1"] = serial["requests"]["sent_per_second"]
        figures["speedup_vs_concurrency_1"] = round(
            figures["requests_per_s"] / max(1e-9, serial["requests"]["sent_per_second"]), 2
        )
    if bootstrap_peer:
        pool_norm = [
            normalize(d["text"], recall_cfg.max_tokens_per_doc, recall_cfg.windows)
            for d in random.Random(seed).sample(pool, min(len(pool), 4000))
        ]
        train_quality_model(QualityConfig(), recall_cfg, pool_norm, seed, work / "bootstrap.bin")
        bootstrap = score_texts(work / "bootstrap.bin", held_norm)
        figures["spearman_bootstrap"] = round(spearman(bootstrap, hidden), 4)
    figures["key_in_files"] = len(files_holding(work, key))
    return figures


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--annotate", type=int, default=4000)
    ap.add_argument("--heldout", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--latency", type=float, default=0.02)
    ap.add_argument("--noise", type=float, default=0.5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--serial-docs", type=int, default=300, help="documents annotated at concurrency 1 (the peer)"
    )
    ap.add_argument("--shared", default=str(REPO.parent / "shared"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        figures = measure(
            Path(args.shared),
            Path(tmp),
            annotate=args.annotate,
            heldout=args.heldout,
            concurrency=args.concurrency,
            latency=args.latency,
            noise=args.noise,
            seed=args.seed,
            serial_docs=args.serial_docs,
        )
    print(json.dumps(figures), file=sys.stdout)


if __name__ == "__main__":
    main()
