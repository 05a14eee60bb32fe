"""infir's curation steps against datatrove's, step by step, on the same documents with the same
parameters. Prints a table, then one JSON line.

    python benchmarks/curate_speed.py CORPUS.jsonl.gz [--labels LABELS.jsonl.gz] [--docs 3000]
                                      [--workers 2] [--repeats 2] [--keep DIR]

CORPUS is the reference corpus (`refcorpus.jsonl.gz` of the shared data folder); LABELS defaults
to the `.labels.jsonl.gz` beside it (its `dup_exact` / `dup_near` rows name each injected copy's
original). The sample is the first `--docs` documents plus the other member of every injected
duplicate pair that has one member among them, in corpus order.

(a) Filters, one process, every document through every rule (no domain guess on either side):
    datatrove  GopherRepetitionFilter(), GopherQualityFilter(),
               C4QualityFilter(filter_no_terminal_punct=False), FineWebQualityFilter(), each with
               its default `language=english`, whose word splitter is spaCy's blank English tokenizer;
    infir      the same four datatrove classes with the same thresholds, given infir's
               `FastEnglishTokenizer` as their word splitter (`infir.curate.filters.web`).
    Both stop at a document's first failing rule (as a datatrove pipeline does). The word splitter
    is the only difference: datatrove configured with infir's splitter *is* infir's filter step,
    so the speedup is the splitter's. The share of documents on which both decide the same is
    reported beside it.
(b) MinHash, one process, 5-word shingles, 14 buckets x 8 hashes (datatrove's MinhashConfig
    defaults) on both sides:
    datatrove  MinhashDedupSignature -> MinhashDedupBuckets (one run per bucket) ->
               MinhashDedupCluster -> MinhashDedupFilter, through their files, on the documents in
               memory. Twice: given infir's word splitter (`hashing.words`, the headline: the same
               words on both sides), and with its default (spaCy) splitter.
    infir      word hashes and signatures of 256 documents at a time (`MinHasher`, as the scan's
               Featurize step), then `find_duplicates` (bands of 8 rows, a candidate pair merged
               when its signatures agree on 50% of the 112 values), exact-hash dedup off.
    What differs: datatrove simplifies the text first (lower case, digits to 0, punctuation and
    diacritics removed: `TextNormConfig` defaults) and merges every bucket collision; infir
    case-folds its words and verifies candidates (its recall without verification is reported
    too, `infir_unverified`). Pair recall: the share of injected pairs whose copy or original is
    removed, averaged over `--recall-seeds` seeds of the hash functions (a pair of
    Jaccard similarity 0.6-0.8 is found by 14 bands of 8 with probability 0.3-0.9, so one seed's
    recall is partly luck); `false_removals`: documents removed that are in no injected pair.
(c) End to end, `--workers` processes each, from the sample file to kept documents:
    datatrove  1. JsonlReader (the sample pre-split into `--workers` files, not timed: one
                  worker per file) -> the four filters of (a) -> JsonlWriter;
               2. MinhashDedupSignature on step 1's output (`--workers` tasks);
               3. MinhashDedupBuckets (14 tasks); 4. MinhashDedupCluster (1 task);
               5. JsonlReader (step 1's output) -> MinhashDedupFilter -> JsonlWriter.
    infir      `run_curate` with language id, recall, quality, decontamination and mixture off:
               1. scan: byte ranges of the one sample file (`--workers` tasks) -> validate ->
                  domain-aware heuristics (web prose gets the four rules of (a); math, technical
                  and code text their own rules) -> word hashes + MinHash signatures -> scan files;
               2. select: MinHash clustering on the driver (settings of (b));
               3. finish: apply the dedup decisions -> gzipped JSONL per domain.
    What differs: infir's heuristics are domain-aware (the four web rules run on what it takes
    for prose, cheaper rules on the rest), datatrove's run the web rules on everything, which
    drops most of a corpus of documentation, code and math, so its MinHash stages see far fewer
    documents (the kept counts are printed); the end-to-end pair recall is therefore no measure
    of dedup: (b) is.

Figures are CPU seconds (this process and its children) — the machine may be shared, so wall time
varies with others' load — with wall seconds beside them; (a) and (b) take the lower of
`--repeats` alternating runs. datatrove 0.10.1's MinHash calls xxhash with `str`, which
xxhash >= 4 refuses: this script (only) wraps datatrove's two xxhash functions to encode first.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from curate_common import read_jsonl  # noqa: E402

NGRAMS, BUCKETS, ROWS = 5, 14, 8  # datatrove's MinhashConfig defaults


def cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class Timed:
    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), cpu_seconds()
        return self

    def __exit__(self, *exc):
        self.wall, self.cpu = time.perf_counter() - self.wall, cpu_seconds() - self.cpu


def best_of(repeats: int, runs: dict) -> dict:
    """Runs each callable `repeats` times, taking turns; per name the result of the last run and
    the lowest CPU and wall seconds."""
    best = {name: {"cpu": float("inf"), "wall": float("inf")} for name in runs}
    for _ in range(repeats):
        for name, fn in runs.items():
            with Timed() as t:
                best[name]["result"] = fn()
            best[name]["cpu"] = min(best[name]["cpu"], t.cpu)
            best[name]["wall"] = min(best[name]["wall"], t.wall)
    return best


def patch_datatrove_xxhash() -> None:
    import xxhash
    from datatrove.utils.hashes import xxhash as dt_xxhash

    def encoded(fn):
        return lambda data: fn(data.encode("utf-8") if isinstance(data, str) else data)

    dt_xxhash.xxhash32 = encoded(xxhash.xxh32_intdigest)
    dt_xxhash.xxhash64 = encoded(xxhash.xxh64_intdigest)


def sample(corpus: Path, labels_path: Path, n: int) -> tuple[list[dict], dict[str, dict]]:
    records = read_jsonl(corpus)
    labels = {r["id"]: r for r in read_jsonl(labels_path)}
    chosen = {r["id"] for r in records[:n]}
    partners = {}
    for doc_id, label in labels.items():
        if label.get("dup_of"):
            partners.setdefault(doc_id, set()).add(label["dup_of"])
            partners.setdefault(label["dup_of"], set()).add(doc_id)
    chosen |= {p for doc_id in list(chosen) for p in partners.get(doc_id, ())}
    docs = [r for r in records if r["id"] in chosen]
    return docs, {i: labels[i] for i in chosen}


def pair_recall(labels: dict[str, dict], kept: set[str]) -> dict:
    pairs = [(i, lab["dup_of"]) for i, lab in labels.items() if lab.get("dup_of") and lab["dup_of"] in labels]
    in_pairs = {x for pair in pairs for x in pair}
    resolved = sum(1 for copy, original in pairs if copy not in kept or original not in kept)
    false_removals = sum(1 for i in labels if i not in in_pairs and i not in kept)
    return {
        "pairs": len(pairs),
        "recall": round(resolved / max(len(pairs), 1), 4),
        "false_removals": false_removals,
    }


# --- (a) filters -------------------------------------------------------------------------------


def datatrove_filters(language):
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
    )

    return [
        ("gopher_rep", GopherRepetitionFilter(language=language)),
        ("gopher", GopherQualityFilter(language=language)),
        ("c4", C4QualityFilter(filter_no_terminal_punct=False, language=language)),
        ("fineweb", FineWebQualityFilter(language=language)),
    ]


def decide_all(docs: list[dict], filters) -> list[bool]:
    from datatrove.data import Document

    from infir.curate.filters.web import web_reason

    return [web_reason(Document(text=d["text"], id=d["id"]), filters) is None for d in docs]


def bench_filters(docs: list[dict], repeats: int) -> dict:
    from datatrove.utils.typeshelper import Languages

    from infir.curate.config import WebRules
    from infir.curate.filters.web import build_web_filters

    theirs, ours = datatrove_filters(Languages.english), build_web_filters(WebRules())
    decide_all(docs[:20], theirs), decide_all(docs[:20], ours)  # load spaCy, compile patterns: not timed
    runs = best_of(
        repeats, {"datatrove": lambda: decide_all(docs, theirs), "infir": lambda: decide_all(docs, ours)}
    )
    same = sum(a == b for a, b in zip(runs["datatrove"]["result"], runs["infir"]["result"])) / len(docs)
    return {
        "datatrove_cpu_s": round(runs["datatrove"]["cpu"], 2),
        "infir_cpu_s": round(runs["infir"]["cpu"], 2),
        "datatrove_wall_s": round(runs["datatrove"]["wall"], 2),
        "infir_wall_s": round(runs["infir"]["wall"], 2),
        "kept": {"datatrove": sum(runs["datatrove"]["result"]), "infir": sum(runs["infir"]["result"])},
        "same_decision": round(same, 4),
    }


# --- (b) MinHash -------------------------------------------------------------------------------


def infir_word_splitter():
    """infir's MinHash words (`hashing.words`) as a datatrove WordTokenizer, for MinHash shingles."""
    from datatrove.utils.word_tokenizers import WordTokenizer

    from infir.curate.dedup.hashing import words

    class InfirWords(WordTokenizer):
        def word_tokenize(self, text: str) -> list[str]:
            return words(text)

        def sent_tokenize(self, text: str) -> list[str]:
            raise TypeError("InfirWords splits words only: it serves MinHash shingles")

        def span_tokenize(self, text: str) -> list[tuple[int, int]]:
            raise TypeError("InfirWords splits words only: it serves MinHash shingles")

    return InfirWords("eng")


def datatrove_minhash(docs: list[dict], work: Path, language, seed: int = 1) -> set[str]:
    from datatrove.data import Document
    from datatrove.pipeline.dedup.minhash import (
        MinhashConfig,
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
        MinhashDedupSignature,
    )

    shutil.rmtree(work, ignore_errors=True)
    config = MinhashConfig(n_grams=NGRAMS, num_buckets=BUCKETS, hashes_per_bucket=ROWS, seed=seed)
    fresh = lambda: (Document(text=d["text"], id=d["id"]) for d in docs)  # noqa: E731
    MinhashDedupSignature(str(work / "sigs"), config=config, language=language).run(fresh())
    buckets = MinhashDedupBuckets(str(work / "sigs"), str(work / "buckets"), config=config)
    for bucket in range(BUCKETS):
        buckets.run(rank=bucket, world_size=BUCKETS)
    MinhashDedupCluster(str(work / "buckets"), str(work / "remove"), config=config).run()
    return {doc.id for doc in MinhashDedupFilter(str(work / "remove")).run(fresh())}


def infir_minhash(docs: list[dict], seed: int = 1, verify: float | None = None) -> set[str]:
    import numpy as np

    from infir.curate.config import DedupConfig
    from infir.curate.dedup.minhash import MinHasher, find_duplicates
    from infir.curate.dedup.hashing import word_hashes_many

    cfg = DedupConfig(exact=False, ngram=NGRAMS, bands=BUCKETS, rows=ROWS, seed=seed)
    if verify is not None:
        cfg.verify_threshold = verify
    hasher = MinHasher(cfg)
    texts = [d["text"] for d in docs]
    sigs = np.concatenate(
        [hasher.signatures(word_hashes_many(texts[i : i + 256])) for i in range(0, len(texts), 256)]
    )
    removed = find_duplicates(np.zeros(len(texts), dtype=np.uint64), sigs, cfg)
    return {d["id"] for i, d in enumerate(docs) if i not in removed}


def bench_minhash(docs: list[dict], labels: dict, work: Path, repeats: int, seeds: int) -> dict:
    """Speed at seed 1; pair recall at seeds 1..`seeds` (the hash functions), since with 14 bands of
    8 a pair of Jaccard similarity 0.6-0.8 is found with probability 0.3-0.9: which such pairs one
    seed finds is luck, the mean over seeds is each method's recall."""
    from datatrove.utils.typeshelper import Languages

    same_words = infir_word_splitter()
    runs = best_of(
        repeats,
        {
            "datatrove": lambda: datatrove_minhash(docs, work / "dt", same_words),
            "datatrove_spacy": lambda: datatrove_minhash(docs, work / "dt-spacy", Languages.english),
            "infir": lambda: infir_minhash(docs),
        },
    )
    per_seed = {"datatrove": [], "infir": [], "infir_unverified": []}
    for seed in range(1, seeds + 1):
        per_seed["datatrove"].append(
            pair_recall(labels, datatrove_minhash(docs, work / "dt", same_words, seed))
        )
        per_seed["infir"].append(pair_recall(labels, infir_minhash(docs, seed)))
        # every bucket collision merged, as datatrove does: what the verification costs in recall
        per_seed["infir_unverified"].append(pair_recall(labels, infir_minhash(docs, seed, verify=0.0)))
    mean = {
        name: {k: round(sum(r[k] for r in rs) / len(rs), 4) for k in ("recall", "false_removals")}
        | {"recall_sd": round(statistics.pstdev([r["recall"] for r in rs]), 4)}
        for name, rs in per_seed.items()
    }
    return {f"{name}_{k}_s": round(r[k], 2) for name, r in runs.items() for k in ("cpu", "wall")} | {
        "recall_seed1": {name: pair_recall(labels, r["result"]) for name, r in runs.items()},
        "recall_by_seed": {name: [r["recall"] for r in rs] for name, rs in per_seed.items()},
        "recall_mean": mean,
    }


# --- (c) end to end ----------------------------------------------------------------------------


def run_local(pipeline: list, tasks: int, workers: int, logs: Path) -> None:
    from datatrove.executor import LocalPipelineExecutor

    LocalPipelineExecutor(
        pipeline=pipeline, tasks=tasks, workers=workers, logging_dir=str(logs), start_method="fork"
    ).run()


def datatrove_end_to_end(shards: Path, out: Path, workers: int) -> set[str]:
    from datatrove.pipeline.dedup.minhash import (
        MinhashConfig,
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
        MinhashDedupSignature,
    )
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter
    from datatrove.utils.typeshelper import Languages

    config = MinhashConfig(n_grams=NGRAMS, num_buckets=BUCKETS, hashes_per_bucket=ROWS)
    filters = [f for _, f in datatrove_filters(Languages.english)]
    run_local(
        [JsonlReader(str(shards)), *filters, JsonlWriter(str(out / "filtered"))], workers, workers, out / "l1"
    )
    run_local(
        [JsonlReader(str(out / "filtered")), MinhashDedupSignature(str(out / "sigs"), config=config)],
        workers,
        workers,
        out / "l2",
    )
    run_local(
        [MinhashDedupBuckets(str(out / "sigs"), str(out / "buckets"), config=config)],
        BUCKETS,
        workers,
        out / "l3",
    )
    run_local(
        [MinhashDedupCluster(str(out / "buckets"), str(out / "remove"), config=config)], 1, 1, out / "l4"
    )
    run_local(
        [
            JsonlReader(str(out / "filtered")),
            MinhashDedupFilter(str(out / "remove")),
            JsonlWriter(str(out / "kept")),
        ],
        workers,
        workers,
        out / "l5",
    )
    return {r["id"] for p in (out / "kept").glob("*.jsonl.gz") for r in read_jsonl(p)}


def infir_end_to_end(sample_file: Path, out: Path, workers: int) -> set[str]:
    from infir.curate.config import CurateConfig, SourceConfig
    from infir.curate.pipeline import run_curate

    cfg = CurateConfig(
        sources=[SourceConfig(type="jsonl", paths=[str(sample_file)])], workers=workers, write_removed=False
    )
    for section in (cfg.langid, cfg.recall, cfg.quality, cfg.decontam, cfg.mixture):
        section.enabled = False
    cfg.dedup.exact, cfg.dedup.ngram, cfg.dedup.bands, cfg.dedup.rows = False, NGRAMS, BUCKETS, ROWS
    run_curate(cfg, out, seed=0)
    return {r["id"] for p in (out / "kept").glob("*.jsonl.gz") for r in read_jsonl(p)}


def bench_end_to_end(docs: list[dict], labels: dict, root: Path, workers: int) -> dict:
    sample_file, shards = root / "sample.jsonl", root / "datatrove-input"
    sample_file.write_text("".join(json.dumps(d) + "\n" for d in docs))
    shards.mkdir(parents=True)
    for k in range(workers):
        with gzip.open(shards / f"part-{k:03d}.jsonl.gz", "wt", compresslevel=1) as f:
            f.writelines(json.dumps(d) + "\n" for d in docs[k::workers])
    with Timed() as theirs:
        kept_theirs = datatrove_end_to_end(shards, root / "dt-e2e", workers)
    with Timed() as ours:
        kept_ours = infir_end_to_end(sample_file, root / "infir-e2e", workers)
    return {
        "datatrove_cpu_s": round(theirs.cpu, 2),
        "infir_cpu_s": round(ours.cpu, 2),
        "datatrove_wall_s": round(theirs.wall, 2),
        "infir_wall_s": round(ours.wall, 2),
        "kept": {"datatrove": len(kept_theirs), "infir": len(kept_ours)},
        "recall": {"datatrove": pair_recall(labels, kept_theirs), "infir": pair_recall(labels, kept_ours)},
    }


def ratio(a: float, b: float) -> float:
    return round(a / b, 2) if b > 0 else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("corpus", type=Path)
    parser.add_argument("--labels", type=Path, help="default: the .labels.jsonl.gz beside the corpus")
    parser.add_argument("--docs", type=int, default=3000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    # one seed's pair recall varies by about a point (sd) on either side: 12 seeds bring the mean's
    # error under a third of a point
    parser.add_argument(
        "--recall-seeds", type=int, default=12, help="MinHash seeds the pair recall is averaged over"
    )
    parser.add_argument(
        "--keep", type=Path, help="keep the outputs in this folder (default: a temporary one)"
    )
    args = parser.parse_args()
    labels_path = args.labels or args.corpus.with_name(args.corpus.name.replace(".jsonl", ".labels.jsonl"))
    root = args.keep or Path(tempfile.mkdtemp(prefix="curate-speed-"))
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    patch_datatrove_xxhash()
    docs, labels = sample(args.corpus, labels_path, args.docs)

    filters = bench_filters(docs, args.repeats)
    minhash = bench_minhash(docs, labels, root, args.repeats, args.recall_seeds)
    e2e = bench_end_to_end(docs, labels, root, args.workers)

    rows = [
        (
            "filters (1 process)",
            filters["datatrove_cpu_s"],
            filters["infir_cpu_s"],
            f"same decision {filters['same_decision']:.2%}",
        ),
        (
            "MinHash, same words (1 process)",
            minhash["datatrove_cpu_s"],
            minhash["infir_cpu_s"],
            f"pair recall (mean of {args.recall_seeds} seeds) {minhash['recall_mean']['datatrove']['recall']:.2%} vs "
            f"{minhash['recall_mean']['infir']['recall']:.2%}",
        ),
        (
            "MinHash, datatrove's spaCy words",
            minhash["datatrove_spacy_cpu_s"],
            minhash["infir_cpu_s"],
            f"pair recall (seed 1) {minhash['recall_seed1']['datatrove_spacy']['recall']:.2%} vs "
            f"{minhash['recall_seed1']['infir']['recall']:.2%}",
        ),
        (
            f"end to end ({args.workers} workers)",
            e2e["datatrove_cpu_s"],
            e2e["infir_cpu_s"],
            f"pair recall {e2e['recall']['datatrove']['recall']:.2%} vs {e2e['recall']['infir']['recall']:.2%}",
        ),
    ]
    print(
        f"{len(docs)} documents, {sum(1 for v in labels.values() if v.get('dup_of') in labels)} injected pairs; "
        "CPU seconds"
    )
    print(f"{'step':36} {'datatrove':>10} {'infir':>8} {'speedup':>8}  notes")
    for name, a, b, note in rows:
        print(f"{name:36} {a:10.2f} {b:8.2f} {ratio(a, b):7.2f}x  {note}")
    result = {
        "corpus": args.corpus.name,
        "docs": len(docs),
        "workers": args.workers,
        "repeats": args.repeats,
        "cpus": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "filters": filters,
        "minhash": minhash,
        "end_to_end": e2e,
        "speedup_vs_datatrove_filters": ratio(filters["datatrove_cpu_s"], filters["infir_cpu_s"]),
        "speedup_vs_datatrove_minhash": ratio(minhash["datatrove_cpu_s"], minhash["infir_cpu_s"]),
        "speedup_vs_datatrove_minhash_spacy_words": ratio(
            minhash["datatrove_spacy_cpu_s"], minhash["infir_cpu_s"]
        ),
        "pair_recall_minhash": {name: r["recall"] for name, r in minhash["recall_mean"].items()},
        "speedup_vs_datatrove_end_to_end": ratio(e2e["datatrove_cpu_s"], e2e["infir_cpu_s"]),
        "wall_speedup_vs_datatrove_end_to_end": ratio(e2e["datatrove_wall_s"], e2e["infir_wall_s"]),
        "output": str(root),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
