"""The run's summary: the funnel (docs and tokens through each step, in the order the pipelines ran them)
plus totals. The counts are the steps' own (`CurateStep`'s books, saved per rank by `ShardStats`): the
one statistics system of a curation run.

Per step: name, docs in, docs out, dropped by reason, seconds (summed over workers, plus the
driver's share for the global steps) and approximate tokens in and out. Every step satisfies
docs_in == docs_out + sum(dropped); `build_summary` checks it before writing.
"""

from __future__ import annotations

import json
from collections import Counter

from infir.curate.config import CurateConfig
from infir.curate.mixture import mixtures


def _add_books(total: dict, books: dict) -> None:
    entry = total.setdefault(
        books["name"],
        {
            "name": books["name"],
            "docs_in": 0,
            "docs_out": 0,
            "dropped": Counter(),
            "seconds": 0.0,
            "words_in": 0,
            "words_out": 0,
        },
    )
    for key in ("docs_in", "docs_out", "seconds", "words_in", "words_out"):
        entry[key] += books[key]
    entry["dropped"].update(books["dropped"])
    for domain, counts in books.get("per_domain", {}).items():
        slot = entry.setdefault("per_domain", {}).setdefault(domain, {"docs": 0, "tokens": 0})
        slot["docs"] += counts["docs"]
        slot["tokens"] += counts["tokens"]


def build_summary(
    cfg: CurateConfig, out, work, n_shards: int, select: dict, walls: dict, wall: float
) -> dict:
    """`out`: the output folder (a datatrove DataFolder, any fsspec filesystem); `work`: the run's `WorkFolder`."""
    steps: dict[str, dict] = {}
    for stage in ("scan", "finish"):
        for rank in range(n_shards):
            for books in work.read_json(f"stats/{stage}/{rank:05d}.json")["steps"]:
                _add_books(steps, books)
    for name in ("recall", "dedup"):  # driver time of the global steps, plus their share of the scan
        if name in steps and name in select:
            steps[name]["seconds"] += select[name]["seconds"]
    if "quality" in steps and "quality" in select:
        steps["quality"]["seconds"] += select["quality"]["seconds"]
    if "decontam" in steps and "decontam" in select:
        steps["decontam"]["seconds"] += select["decontam"]["index_seconds"] + select.get(
            "decontam_match_seconds", 0
        )
    tpw = cfg.mixture.tokens_per_word
    funnel = []
    for name in steps:  # the order the steps ran in: the scan pipeline's, then the finish pipeline's
        s = steps[name]
        dropped = dict(sorted(s["dropped"].items(), key=lambda kv: -kv[1]))
        if s["docs_in"] != s["docs_out"] + sum(dropped.values()):
            raise AssertionError(
                f"step {name}: docs in {s['docs_in']} != out {s['docs_out']} + dropped {dropped}"
            )
        funnel.append(
            {
                "name": name,
                "docs_in": s["docs_in"],
                "docs_out": s["docs_out"],
                "dropped": dropped,
                "seconds": round(s["seconds"], 3),
                "tokens_in": int(s["words_in"] * tpw),
                "tokens_out": int(s["words_out"] * tpw),
            }
        )
    per_domain = steps.get("mixture", {}).get("per_domain", {})
    mix = mixtures(
        cfg.mixture,
        {d: v["tokens"] for d, v in per_domain.items()},
        {d: v["docs"] for d, v in per_domain.items()},
    )
    if cfg.mixture.enabled:
        with out.open("mixtures.json", "wt") as f:
            f.write(json.dumps({k: v for k, v in mix.items() if k != "token_count"}, indent=2))
    docs_read = funnel[0]["docs_in"] if funnel else 0
    kept = funnel[-1]["docs_out"] if funnel else 0
    summary = {
        "steps": funnel,
        "totals": {
            "docs_read": docs_read,
            "docs_kept": kept,
            "docs_dropped": docs_read - kept,
            "tokens_read": funnel[0]["tokens_in"] if funnel else 0,
            "tokens_kept": funnel[-1]["tokens_out"] if funnel else 0,
            "seconds": round(wall, 3),
            "stage_seconds": {k: round(v, 3) for k, v in walls.items()},
            "shards": n_shards,
            "workers": cfg.workers,
            "executor": cfg.executor,
        },
        "domains": per_domain,
        "token_count": f"approximate: whitespace words x {tpw}",
        "select": select,
        "outputs": {
            "kept": "kept/<domain>_<shard>.jsonl.gz",
            "removed": "removed/<step>/<shard>.jsonl.gz" if cfg.write_removed else None,
            "mixtures": "mixtures.json" if cfg.mixture.enabled else None,
        },
    }
    with out.open("summary.json", "wt") as f:
        f.write(json.dumps(summary, indent=2, default=str))
    return summary
