"""Near-duplicate detection on templated reference pages: distinct pages that share their option
sections and footers stay; real near copies of a page go."""

from __future__ import annotations

import gzip
import itertools
import json
import random
from pathlib import Path

import numpy as np

from infir.curate.config import CurateConfig, SourceConfig
from infir.curate.dedup.minhash import MinHasher
from infir.curate.pipeline import run_curate

_WORDS = (
    "account address archive backup bucket cache certificate channel cluster config connection "
    "container credential database deployment device directory disk domain endpoint engine "
    "environment event file filter firewall folder function gateway group host identity image "
    "index instance interface job key label license listener log machine member message metric "
    "module monitor network node notification operation package partition peer permission "
    "pipeline policy pool port profile project proxy queue quota record region registry release "
    "replica repository request resource revision role route rule schedule schema secret "
    "service session snapshot source storage stream subnet subscription table tag target task "
    "template tenant token topic trigger user version volume webhook workflow zone"
).split()
_VERBS = "add attach cancel copy create delete describe detach export import list move remove restore update".split()

_GLOBAL_FLAGS = """GLOBAL FLAGS
 These flags are available to all commands: --access-token-file, --account,
 --billing-project, --configuration, --flags-file, --flatten, --format, --help,
 --impersonate-service-account, --log-http, --project, --quiet, --trace-token,
 --user-output-enabled, --verbosity.

 Run $ tool help for details about the flags that every command of the tool accepts.

 --format=FORMAT
 Sets the format for printing command output resources. The default is a command-specific
 human-friendly output format. The supported formats are limited to config, csv, default,
 diff, disable, flattened, get, json, list, multi, none, object, table, text, value, yaml.

 --verbosity=VERBOSITY
 Override the default verbosity for this command. Overrides the default core/verbosity
 property value for this command invocation. It must be one of debug, info, warning, error,
 critical or none, and the default is warning.

ENVIRONMENT
 The tool reads its configuration from the active configuration folder unless the variable
 that names another folder is set; values given on the command line win over both of them.

EXIT STATUS
 The tool exits with zero when the command succeeds, with one when the request was rejected,
 and with two when the arguments could not be parsed.

NOTES
 This command is currently in beta and might change without notice. These variants are also
 available in the alpha and beta release tracks of the tool, with the same flags.
 Copyright 2024. All rights reserved. Report problems through the issue tracker of the project."""


def _sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(n)).capitalize() + "."


def man_page(verb: str, noun: str, rng: random.Random) -> str:
    title = f"TOOL-{noun.upper()}-{verb.upper()}(1)"
    flags = "\n\n".join(
        f" --{rng.choice(_WORDS)}-{rng.choice(_WORDS)}={rng.choice(_WORDS).upper()}\n " + _sentence(rng, 9)
        for _ in range(2)
    )
    return (
        f"{title} General Commands Manual {title}\n\nNAME\n tool {noun} {verb} - {verb} a {noun}\n\n"
        f"SYNOPSIS\n tool {noun} {verb} {noun.upper()} [GLOBAL-FLAG ...]\n\n"
        f"DESCRIPTION\n {_sentence(rng, 14)}\n\nFLAGS\n{flags}\n\n{_GLOBAL_FLAGS}\n\n {title}"
    )


def _near_copy(text: str, rng: random.Random) -> str:
    lines = text.split("\n")
    body = lines.index("DESCRIPTION") + 1
    words = lines[body].split(" ")
    i = rng.randrange(2, len(words))
    words[i] = rng.choice(_WORDS)
    lines[body] = " ".join(words)
    return "\n".join(lines)


def build(path: Path) -> tuple[dict[str, str], dict[str, str]]:
    rng = random.Random(7)
    pages = {
        f"{noun}-{verb}": man_page(verb, noun, rng)
        for noun, verb in itertools.islice(itertools.product(_WORDS[:12], _VERBS), 120)
    }
    copies = {f"copy-of-{k}": k for k in list(pages)[::12]}
    records = [{"id": k, "text": t} for k, t in pages.items()]
    for copy, original in copies.items():
        records.append({"id": copy, "text": _near_copy(pages[original], rng)})
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.writelines(json.dumps(r) + "\n" for r in records)
    return pages, copies


def _dedup_only(path: Path) -> CurateConfig:
    cfg = CurateConfig(sources=[SourceConfig(type="jsonl", paths=[str(path)])], workers=2)
    for section in (cfg.langid, cfg.filters, cfg.recall, cfg.quality, cfg.decontam):
        section.enabled = False
    return cfg


def test_templated_pages_are_hard_for_signatures_alone(tmp_path):
    """The set is a real test: many distinct pages agree on more MinHash values than the
    signature threshold asks."""
    pages, _ = build(tmp_path / "in.jsonl.gz")
    cfg = _dedup_only(tmp_path / "in.jsonl.gz").dedup
    sigs = np.stack([MinHasher(cfg).signature(t) for t in pages.values()])
    agree = (sigs[:, None, :] == sigs[None, :, :]).mean(axis=2)[np.triu_indices(len(sigs), 1)]
    assert (agree >= cfg.verify_threshold).sum() >= 50


def test_distinct_templated_pages_stay_and_near_copies_go(tmp_path):
    pages, copies = build(tmp_path / "in.jsonl.gz")
    out = tmp_path / "out"
    summary = run_curate(_dedup_only(tmp_path / "in.jsonl.gz"), out)
    removed = {
        json.loads(line)["id"]: json.loads(line)["metadata"]
        for p in (out / "removed/dedup").glob("*.jsonl.gz")
        for line in gzip.open(p, "rt")
    }
    falsely_removed = sorted(k for k in removed if k in pages)
    assert falsely_removed == []
    assert set(removed) == set(copies)
    assert all(removed[c]["duplicate_of"] == o for c, o in copies.items())
    dedup = {s["name"]: s for s in summary["steps"]}["dedup"]
    assert dedup["docs_out"] == len(pages)
