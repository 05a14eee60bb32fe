"""The tokenize stage: curated documents -> tokenizer + token shards + mixture weights.

Reads the curate stage's `kept/` documents (JSONL, JSONL.gz or Parquet) and `mixtures.json`.
Writes into the stage directory:
  tokenizer/           AutoTokenizer-loadable (trained byte-level BPE, or the loaded base tokenizer)
  shards/<domain>/     token shards (`shards.py`), `val_docs.npy` (the held-out documents)
  shards/index.json    every shard with counts and checksums
  shards/_jobs/        per-shard-job done files (resume)
  loader.json          {"seq_len", "mixtures": {mix: {domain: weight}}}: what `loader.build_loader` reads
Rerunning after an interruption keeps the trained tokenizer and the finished shard jobs (register
the stage as resumable).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

from infir.run import read_json, write_json
from infir.tokenize.config import TokenizeConfig, TokenizerConfig
from infir.tokenize.loader import LOADER_FILE
from infir.tokenize.pipeline import EncodingSpec, ShardingRun, select_validation
from infir.tokenize.sources import RecordReader, find_inputs, parse_record
from infir.tokenize.tokenizer import (
    document_end_token,
    load_tokenizer,
    save_tokenizer,
    tokenizer_fingerprint,
    train_tokenizer,
)

TOKENIZER_DONE = "_tokenizer_done.json"


def run(ctx) -> dict:
    """Recipe entry point: `ctx.recipe.tokenizer`, `ctx.recipe.tokenize`, input from the curate stage."""
    curate_dir = ctx.output_of("curate")
    mixtures_path = curate_dir / "mixtures.json"
    return tokenize_corpus(
        curate_dir / "kept",
        ctx.stage_dir,
        ctx.recipe.tokenizer,
        ctx.recipe.tokenize,
        mixtures_path if mixtures_path.exists() else None,
    )


def tokenize_corpus(
    inputs: Path | list[Path],
    out_dir: Path,
    tokenizer_cfg: TokenizerConfig,
    cfg: TokenizeConfig,
    mixtures_path: Path | None = None,
    log=print,
    progress: bool = True,
) -> dict:
    """The whole stage on explicit inputs (a folder or a list of files); returns the summary."""
    out_dir = Path(out_dir)
    files = find_inputs(inputs) if isinstance(inputs, (str, Path)) else [Path(p) for p in inputs]
    tokenizer, tokenizer_info = _tokenizer(files, out_dir, tokenizer_cfg, cfg, log)
    spec = encoding_spec(tokenizer, out_dir / "tokenizer")
    shards_dir = out_dir / "shards"
    sharding = ShardingRun(files, spec, shards_dir, cfg, log=log, progress=progress).run()
    val = select_validation(shards_dir, cfg.val_fraction, cfg.val_min_docs, cfg.val_max_docs)
    domains = {
        d: {
            "docs": s["docs"],
            "tokens": s["tokens"],
            "train_docs": s["docs"] - val[d]["docs"],
            "train_tokens": s["tokens"] - val[d]["tokens"],
            "val_docs": val[d]["docs"],
            "val_tokens": val[d]["tokens"],
        }
        for d, s in sharding["domains"].items()
    }
    mixtures, dropped = resolve_mixtures(mixtures_path, cfg.mixtures, domains, log)
    write_json(out_dir / LOADER_FILE, {"seq_len": cfg.seq_len, "mixtures": mixtures})
    return {
        "tokenizer": tokenizer_info,
        "inputs": [str(p) for p in files],
        "domains": domains,
        "mixtures": mixtures,
        "dropped_from_mixtures": dropped,
        "seq_len": cfg.seq_len,
        "sharding": {k: v for k, v in sharding.items() if k != "domains"},
    }


def encoding_spec(tokenizer, tokenizer_dir: Path) -> EncodingSpec:
    end = document_end_token(tokenizer)
    doc_end_id = tokenizer.convert_tokens_to_ids(end)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else doc_end_id
    return EncodingSpec(
        tokenizer_json=tokenizer.backend_tokenizer.to_str(),
        doc_end_id=int(doc_end_id),
        pad_id=int(pad_id),
        vocab_size=len(tokenizer),
        fingerprint=tokenizer_fingerprint(tokenizer_dir),
    )


def _config_hash(tokenizer_cfg: TokenizerConfig) -> str:
    return hashlib.sha256(tokenizer_cfg.model_dump_json().encode()).hexdigest()[:16]


def _tokenizer(files: list[Path], out_dir: Path, tokenizer_cfg: TokenizerConfig, cfg: TokenizeConfig, log):
    """Load or train the tokenizer, reusing one a previous (interrupted) run of this config saved."""
    tok_dir, marker = out_dir / "tokenizer", out_dir / TOKENIZER_DONE
    if marker.exists() and read_json(marker).get("config") == _config_hash(tokenizer_cfg):
        info = read_json(marker)["info"]
        log(f"tokenizer: reusing {tok_dir}")
        return load_tokenizer(tok_dir), info
    if tokenizer_cfg.path_or_name:
        tokenizer = load_tokenizer(tokenizer_cfg.path_or_name)
        info = {"source": "loaded", "path_or_name": tokenizer_cfg.path_or_name}
        log(f"tokenizer: loaded {tokenizer_cfg.path_or_name} ({len(tokenizer)} tokens)")
    else:
        tokenizer = train_tokenizer(sample_texts(files, cfg.default_domain), tokenizer_cfg, log=log)
        info = {"source": "trained", "max_train_chars": tokenizer_cfg.max_train_chars}
    save_tokenizer(tokenizer, tok_dir)
    tokenizer = load_tokenizer(tok_dir)  # exactly what a resumed run and later stages will load
    info.update(
        vocab_size=len(tokenizer),
        eos_token=tokenizer.eos_token,
        pad_token=tokenizer.pad_token,
        document_end=document_end_token(tokenizer),
        path=str(tok_dir),
    )
    write_json(marker, {"config": _config_hash(tokenizer_cfg), "info": info})
    return tokenizer, info


def sample_texts(files: list[Path], default_domain: str) -> Iterator[str]:
    """Documents round-robin across the input files, so a capped sample still sees every file."""
    iterators = [(path, iter(RecordReader(path))) for path in files]
    while iterators:
        alive = []
        for path, it in iterators:
            record = next(it, None)
            if record is not None:
                lineno, _, payload = record
                yield parse_record(path, lineno, payload, default_domain).text
                alive.append((path, it))
        iterators = alive


Weights = dict[str, float]


def resolve_mixtures(
    mixtures_path: Path | None, overrides: dict[str, Weights] | None, domains: dict[str, dict], log
) -> tuple[dict[str, Weights], dict[str, list[str]]]:
    """Mixture weights per mix, normalized, over domains that have training tokens.

    Sources, later wins: `natural` (proportional to tokens), curate's mixtures.json, the
    `tokenize.mixtures` override. `pretrain` defaults to `natural` when nobody defines it. A weighted
    domain without training tokens is dropped with a warning (and listed in the summary).
    """
    natural = {d: s["train_tokens"] for d, s in domains.items() if s["train_tokens"] > 0}
    raw: dict[str, dict[str, float]] = {"natural": natural}
    if mixtures_path is not None:
        try:
            curated = json.loads(Path(mixtures_path).read_text())
            raw.update({mix: dict(spec["weights"]) for mix, spec in curated.items()})
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as e:
            expected = "{mix: {'weights': {domain: weight}}}"
            raise ValueError(f"{mixtures_path}: expected {expected} ({e})") from e
    raw.update(overrides or {})
    raw.setdefault("pretrain", natural)
    mixtures, dropped = {}, {}
    for mix, weights in raw.items():
        gone = sorted(d for d, w in weights.items() if w > 0 and d not in natural)
        kept = {d: float(w) for d, w in sorted(weights.items()) if w > 0 and d in natural}
        if gone:
            dropped[mix] = gone
            log(f"warning: mixture {mix!r} weights domains with no training tokens: {gone}; dropped")
        total = sum(kept.values())
        if total <= 0:
            raise ValueError(
                f"mixture {mix!r} has no domain with training tokens (weights {weights}, "
                f"domains {sorted(natural)})"
            )
        mixtures[mix] = {d: w / total for d, w in kept.items()}
    return mixtures, dropped
