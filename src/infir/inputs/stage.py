"""`infir inputs`: draw the recall seeds and the quality annotations a recipe's `curate` section reads.

Each output is written atomically where the recipe names it; `parts/<name>.json` in the stage directory
records the spec it was drawn with and the file's sha256, so a resumed stage (killed after some outputs)
redraws only what is missing, changed or edited. The annotation cache (`cache/`) survives reruns, even
with `--force` or another sample size: a document asked once is never asked again.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from pathlib import Path

from infir.inputs.config import InputsConfig, SampleSpec
from infir.inputs.sample import draw, file_sha256, write_jsonl_atomic
from infir.run import StageContext, read_json, write_json

log = logging.getLogger("infir.inputs")


def _spec_hash(spec: SampleSpec, extra: dict | None = None) -> str:
    # an edited local file is another sample, even between a kill and its resume
    files = [[p, Path(p).stat().st_size, Path(p).stat().st_mtime_ns] for p in spec.local_files()]
    payload = json.dumps(
        {"spec": spec.model_dump(mode="json"), "files": files, **(extra or {})}, sort_keys=True
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _done(part: Path, key: str, out: str) -> dict | None:
    """The recorded result of a part, when its output is still the file it wrote."""
    if not part.is_file():
        return None
    record = read_json(part)
    if record.get("key") != key or record.get("sha256") != file_sha256(out):
        return None
    return record["summary"]


def draw_seeds(name: str, spec: SampleSpec) -> dict:
    texts, counts = draw(spec)
    sha = write_jsonl_atomic(spec.out, ({"text": t} for t in texts))
    if len(texts) < spec.size:
        log.warning("inputs %s: %d records asked, the sources held %d", name, spec.size, len(texts))
    return {"out": spec.out, "asked": spec.size, "written": len(texts), **counts, "sha256": sha}


def annotate_sample(cfg, cache_dir: Path) -> dict:
    from infir.inputs.annotate import annotate
    from infir.synth.cache import ResponseCache
    from infir.synth.teachers import OpenAITeacher

    texts, counts = draw(cfg.sample)
    cache = ResponseCache(cache_dir / "annotations.sqlite")
    teacher = OpenAITeacher(cfg.teacher, cache, role="annotator", show_progress=False)
    stats: Counter = Counter()
    try:
        sha = write_jsonl_atomic(cfg.sample.out, annotate(texts, cfg, teacher, stats))
    finally:
        teacher.close()
        cache.close()
    written = sum(v for k, v in stats.items() if k.startswith("score_"))
    return {
        "out": cfg.sample.out,
        "asked": cfg.sample.size,
        "documents": len(texts),
        "written": written,
        **counts,
        "scores": {k.removeprefix("score_"): v for k, v in sorted(stats.items()) if k.startswith("score_")},
        "unparsed": stats["unparsed"],
        "failed": stats["failed"],
        "requests": teacher.stats.to_dict(),
        "client": teacher.client.stats.to_dict(),
        "sha256": sha,
    }


def make_inputs(cfg: InputsConfig, stage_dir: Path) -> dict:
    parts = stage_dir / "parts"
    summary = {}
    for name, spec in cfg.specs():
        extra = {}
        if name == "annotate":
            from dataclasses import asdict

            from infir.inputs.annotate import load_prompt

            a = cfg.annotate
            extra = {
                "teacher": a.teacher.model_dump(mode="json"),
                "prompt": asdict(load_prompt(a.prompt)),
                "max_chars": a.max_chars,
            }
        key = _spec_hash(spec, extra)
        part = parts / f"{name}.json"
        done = _done(part, key, spec.out)
        if done is not None:
            summary[name] = {**done, "reused": True}
            continue
        if name == "annotate":
            result = annotate_sample(cfg.annotate, stage_dir / "cache")
        else:
            result = draw_seeds(name, spec)
        if not result.get("failed"):  # a rerun asks again what failed (the cache answers the rest)
            write_json(part, {"key": key, "sha256": result["sha256"], "summary": result})
        summary[name] = result
    return summary


def run(ctx: StageContext) -> dict:
    cfg: InputsConfig = ctx.recipe.inputs
    if not cfg.specs():
        raise ValueError(
            "the `inputs` stage has nothing to make: give `inputs.recall_seeds` or `inputs.annotate`"
        )
    return {"outputs": make_inputs(cfg, ctx.stage_dir)}
