"""`infir tokenize` sharding throughput against raw `tokenizers` encode_batch, same texts, same cores.

Ours: the whole sharding pass (read the gzipped JSONL, parse, encode in `--workers` processes, write
uint16 shards, index, checksums). Peer: `Tokenizer.encode_batch` on the same texts already in memory
(its own thread pool on all cores), i.e. encoding alone. Both use the same trained 8k byte-level BPE.
Runs alternate (peer first, then ours first, ...) and each side's best of `--repeats` is compared,
because the machine is shared; the median of the per-round ratios and the load average are printed
too, to judge the noise.

    python benchmarks/tokenize_throughput.py [--corpus ../shared/corpus/refcorpus.jsonl.gz]

Prints one JSON line; `ratio_vs_tokenizers_encode_batch` is peer time / our time (>= 0.8 wanted).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def default_corpus() -> Path:
    shared = Path(os.environ.get("INFIR_SHARED", REPO.parent / "shared"))
    return shared / "corpus" / "refcorpus.jsonl.gz"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, default=default_corpus())
    ap.add_argument("--workers", type=int, default=os.cpu_count())
    ap.add_argument("--vocab-size", type=int, default=8192)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--shard-size-mb", type=float, default=8.0)
    args = ap.parse_args()
    if not args.corpus.exists():
        raise SystemExit(f"{args.corpus}: corpus not found (pass --corpus)")

    from tokenizers import Tokenizer

    from infir.tokenize.config import TokenizeConfig, TokenizerConfig
    from infir.tokenize.pipeline import ShardingRun
    from infir.tokenize.stage import encoding_spec
    from infir.tokenize.tokenizer import train_tokenizer

    work = Path(tempfile.mkdtemp(prefix="infir-bench-tokenize-"))
    try:
        with gzip.open(args.corpus, "rt", encoding="utf-8") as f:
            texts = [json.loads(line)["text"] for line in f if line.strip()]
        chars = sum(map(len, texts))
        hf = train_tokenizer(
            texts,
            TokenizerConfig(vocab_size=args.vocab_size, max_train_chars=5_000_000),
            work / "tokenizer",
            log=lambda *_: None,
        )
        spec = encoding_spec(hf, work / "tokenizer")
        peer = Tokenizer.from_str(spec.tokenizer_json)
        peer.encode_special_tokens = True  # as ours: specials in text are text
        cfg = TokenizeConfig(workers=args.workers, shard_size_mb=args.shard_size_mb)

        def run_peer() -> tuple[float, int]:
            t0 = time.perf_counter()
            encodings = peer.encode_batch(texts)
            return time.perf_counter() - t0, sum(len(e.ids) for e in encodings)

        def run_fast() -> float:
            t0 = time.perf_counter()
            peer.encode_batch_fast(texts)
            return time.perf_counter() - t0

        def run_ours() -> tuple[float, int]:
            out = work / "shards"
            shutil.rmtree(out, ignore_errors=True)
            t0 = time.perf_counter()
            result = ShardingRun([args.corpus], spec, out, cfg, log=lambda *_: None, progress=False).run()
            return time.perf_counter() - t0, result["tokens"] - result["docs"]  # minus one end-of-text a doc

        load_start = os.getloadavg()[0]
        ours_s, peer_s, fast_s = [], [], []
        for r in range(args.repeats):
            # alternate who goes first, so a load spike does not always hit the same side
            order = ("peer", "ours") if r % 2 == 0 else ("ours", "peer")
            for side in order:
                if side == "peer":
                    seconds, peer_tokens = run_peer()
                    peer_s.append(seconds)
                    fast_s.append(run_fast())
                else:
                    seconds, ours_tokens = run_ours()
                    ours_s.append(seconds)
            if ours_tokens != peer_tokens:
                raise SystemExit(f"token counts differ: ours {ours_tokens}, encode_batch {peer_tokens}")
        best_ours, best_peer, best_fast = min(ours_s), min(peer_s), min(fast_s)
        pair_ratios = sorted(p / o for p, o in zip(peer_s, ours_s))
        print(
            json.dumps(
                {
                    "benchmark": "tokenize_throughput",
                    "corpus": args.corpus.name,
                    "docs": len(texts),
                    "chars": chars,
                    "tokens": peer_tokens,
                    "cores": os.cpu_count(),
                    "workers": args.workers,
                    "repeats": args.repeats,
                    "loadavg_1min": [round(load_start, 2), round(os.getloadavg()[0], 2)],
                    "infir_tokenize_s": round(best_ours, 3),
                    "tokenizers_encode_batch_s": round(best_peer, 3),
                    "tokenizers_encode_batch_fast_s": round(best_fast, 3),
                    "infir_tokens_per_s": round(peer_tokens / best_ours),
                    "encode_batch_tokens_per_s": round(peer_tokens / best_peer),
                    "ratio_vs_tokenizers_encode_batch": round(best_peer / best_ours, 3),
                    "median_pair_ratio_vs_tokenizers_encode_batch": round(
                        pair_ratios[len(pair_ratios) // 2], 3
                    ),
                    "ratio_vs_tokenizers_encode_batch_fast": round(best_fast / best_ours, 3),
                    "all_runs_s": {
                        "infir": [round(x, 2) for x in ours_s],
                        "encode_batch": [round(x, 2) for x in peer_s],
                        "encode_batch_fast": [round(x, 2) for x in fast_s],
                    },
                }
            )
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
