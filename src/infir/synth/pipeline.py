"""InfiR's SFT data pipeline, step by step:

  seeds -> dedup + decontaminate prompts -> evolve -> dedup + decontaminate the rewrites
  -> N candidate answers per prompt (teacher) -> verify -> rejection sampling (verified answers only)
  -> difficulty (reference model's pass rate) -> quality (judge) -> domain labels
  -> decontaminate prompt + answer -> output limits -> <out>/sft.jsonl (SFT `messages`)

Every teacher, reference model and judge asks through one request cache, so a rerun or a run resumed
after a kill sends only requests never answered. `summary` counts what each step kept and dropped, by
reason; `details/` holds every prompt and every candidate answer with its verdict and reason.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import Counter
from pathlib import Path

from infir.synth.cache import ResponseCache
from infir.synth.config import SynthConfig
from infir.synth.evolve import evolve
from infir.synth.items import Candidate, Item, stable_int
from infir.synth.scorers import build_scorer
from infir.synth.seeds import load_seeds
from infir.synth.select import (
    Decontaminator,
    dedup_prompts,
    in_range,
    label_requests,
    pass_rates,
    pick_label,
    rejection_sample,
    summarize,
)
from infir.synth.teachers import ChatRequest, build_teacher
from infir.synth.verify import Verifier

log = logging.getLogger("infir.synth")
OUTPUT_NAME = "sft.jsonl"


class Funnel:
    """Rows of {step, unit, in, out, dropped{reason: n}}; `in == out + sum(dropped)` for every row."""

    def __init__(self):
        self.rows: list[dict] = []

    def add(self, step: str, unit: str, n_in: int, n_out: int, dropped: Counter | dict) -> None:
        dropped = {k: int(v) for k, v in dropped.items() if v}
        assert n_in == n_out + sum(dropped.values()), (step, n_in, n_out, dropped)
        self.rows.append({"step": step, "unit": unit, "in": n_in, "out": n_out, "dropped": dropped})


def answer_messages(item: Item, cfg: SynthConfig, with_instruction: bool = True) -> list[dict]:
    system = cfg.teacher.system_prompt
    prompt = item.prompt
    instruction = cfg.generation.instructions.get(item.domain, "")
    # A task's own chat question already says how to answer; others get the domain's instruction.
    if with_instruction and item.task is None and instruction and instruction not in prompt:
        prompt = f"{prompt}\n{instruction}"
    return ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]


def sample_requests(
    items: list[Item], cfg: SynthConfig, n: int, temperature: float, max_tokens: int, salt: str
) -> list[ChatRequest]:
    return [
        ChatRequest(
            messages=answer_messages(item, cfg),
            temperature=temperature,
            max_tokens=max_tokens,
            seed=stable_int(salt, cfg.generation.seed, item.id, k),
            purpose="answer",
            hint={"question": item.prompt},
        )
        for item in items
        for k in range(n)
    ]


def _candidates(items: list[Item], completions, n: int) -> dict[str, list[Candidate]]:
    out: dict[str, list[Candidate]] = {}
    for j, c in enumerate(completions):
        item = items[j // n]
        out.setdefault(item.id, []).append(Candidate(item.id, j % n, c.text, c.finish_reason, c.error))
    return out


def synthesize(
    cfg: SynthConfig, out_dir: Path, *, run_dir: Path | None = None, seed: int = 0, show_progress: bool = True
) -> dict:
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    (out_dir / "details").mkdir(parents=True, exist_ok=True)
    cache_path = (
        Path(cfg.cache_path) if cfg.cache_path else (run_dir or out_dir) / "cache" / "synth-requests.sqlite"
    )
    cache = ResponseCache(cache_path)
    funnel = Funnel()
    summary: dict = {}
    roles: dict = {}

    # ---- seeds, evolution, prompt filters ---------------------------------------------------------
    seeds, summary["seeds"] = load_seeds(cfg.seeds)
    unreadable = summary["seeds"]["dropped"]
    funnel.add("load_seeds", "prompts", len(seeds) + sum(unreadable.values()), len(seeds), unreadable)
    decontam = Decontaminator(cfg.decontam, out_dir / "details")
    summary["decontam_index"] = decontam.report
    seeds = _filter_prompts(seeds, cfg, decontam, funnel, "seeds")
    teacher = build_teacher(cfg.teacher, cache, "teacher", run_dir, show_progress)
    roles["teacher"] = teacher
    evolved: list[Item] = []
    if cfg.evolve.enabled and cfg.evolve.rounds > 0:
        evolved, summary["evolve"] = evolve(seeds, teacher, cfg.evolve, seed, cfg.teacher.system_prompt)
        ev = summary["evolve"]
        funnel.add("evolve", "rewrites", ev["requested"], ev["accepted"], ev["rejected"])
        evolved = _filter_prompts(seeds + evolved, cfg, decontam, funnel, "evolved", only_after=len(seeds))
    prompts = (seeds if cfg.evolve.keep_seeds else []) + evolved
    prompt_by_id = {i.id: i for i in prompts}

    # ---- candidates, verification, rejection sampling ------------------------------------------------
    gen = cfg.generation
    n = gen.n
    completions = teacher.complete(
        sample_requests(
            prompts,
            cfg,
            n,
            gen.temperature if gen.temperature is not None else cfg.teacher.temperature,
            gen.max_tokens or cfg.teacher.max_tokens,
            "answer",
        ),
        "answers",
    )
    candidates = _candidates(prompts, completions, n)
    scorer = build_scorer(cfg.scorer, cache, "scorer", run_dir, show_progress) if cfg.scorer else None
    if scorer is not None:
        roles["scorer"] = scorer
    verifier = Verifier(cfg, scorer)
    t_verify = time.perf_counter()
    consensus = verifier.verify(prompts, candidates)
    all_cands = [c for cs in candidates.values() for c in cs]
    verified = sum(c.verified for c in all_cands)
    reasons = Counter(c.reason for c in all_cands if not c.verified)
    funnel.add("verify", "answers", len(all_cands), verified, reasons)
    summary["verify"] = {
        "candidates": len(all_cands),
        "verified": verified,
        "rejected": dict(reasons),
        "by_reason": dict(Counter(c.reason for c in all_cands)),
        "by_method": dict(Counter(c.method for c in all_cands)),
        "seconds": round(time.perf_counter() - t_verify, 2),
    }
    kept, dropped = rejection_sample(prompts, candidates, cfg.output.max_per_prompt)
    funnel.add("rejection_sampling", "prompts", len(prompts), len(kept), dropped)
    items = [prompt_by_id[i] for i in kept]

    # ---- difficulty, quality, labels -------------------------------------------------------------
    difficulty = _difficulty(items, cfg, cache, consensus, verifier, run_dir, show_progress, roles)
    if cfg.difficulty.reference is not None:
        low, high = cfg.difficulty.min, cfg.difficulty.max
        before = len(items)
        outside = Counter(
            "too_easy" if difficulty[i.id] < low else "too_hard"
            for i in items
            if not in_range(difficulty.get(i.id), low, high)
        )
        items = [i for i in items if in_range(difficulty.get(i.id), low, high)]
        funnel.add("difficulty", "prompts", before, len(items), outside)
    summary["difficulty"] = {"scored": len(difficulty), **summarize(list(difficulty.values()))}
    quality = _quality(items, kept, cfg, cache, run_dir, show_progress, roles, funnel)
    summary["quality"] = {"scored": len(quality), **summarize(list(quality.values()))}
    items = [i for i in items if kept.get(i.id)]
    summary["labels"] = _label(items, cfg, cache, run_dir, show_progress, roles)

    # ---- answers decontaminated, limits, output ------------------------------------------------------
    examples = [(i, c) for i in items for c in kept[i.id]]
    before = len(examples)
    clean, dirty = [], Counter()
    for i, c in examples:
        task = decontam.contaminated_with(i.prompt + "\n" + c.text)
        if task is None:
            clean.append((i, c))
        else:
            dirty[f"contaminated:{task}"] += 1
    funnel.add("decontaminate_answers", "answers", before, len(clean), dirty)
    examples = clean
    if cfg.output.order == "hardest_first":
        examples.sort(key=lambda ic: -difficulty.get(ic[0].id, 0.0))
    if cfg.output.max_examples is not None and len(examples) > cfg.output.max_examples:
        funnel.add(
            "output_limit",
            "answers",
            len(examples),
            cfg.output.max_examples,
            {"over_max_examples": len(examples) - cfg.output.max_examples},
        )
        examples = examples[: cfg.output.max_examples]
    _write_output(out_dir, examples, cfg, difficulty, quality)
    _write_details(out_dir, prompts, candidates, cfg)

    for role in roles.values():
        if hasattr(role, "close"):
            role.close()
    summary["requests"] = {name: _request_stats(role) for name, role in roles.items()}
    summary["cache"] = {"path": str(cache_path), "entries": len(cache), **cache.stats()}
    cache.close()
    summary["funnel"] = funnel.rows
    summary["output"] = {
        "file": OUTPUT_NAME,
        "examples": len(examples),
        "by_domain": dict(Counter(i.domain for i, _ in examples)),
        "by_label": dict(Counter(i.label or i.domain for i, _ in examples)),
        "evolved": sum(1 for i, _ in examples if i.parent_id is not None),
    }
    summary["examples"] = len(examples)
    summary["seconds"] = round(time.perf_counter() - t0, 3)
    log.info("synth: %d examples from %d prompts in %.1fs", len(examples), len(prompts), summary["seconds"])
    return summary


def _filter_prompts(
    items: list[Item],
    cfg: SynthConfig,
    decontam: Decontaminator,
    funnel: Funnel,
    step: str,
    only_after: int = 0,
) -> list[Item]:
    """Dedup `items` (earlier ones win), decontaminate those from position `only_after` on; return those."""
    deduped, dup_reasons = dedup_prompts(items, cfg.dedup)
    fresh_ids = {i.id for i in items[only_after:]}
    fresh = [i for i in deduped if i.id in fresh_ids]
    clean, dirty = decontam.split(fresh)
    funnel.add(f"dedup_decontam_{step}", "prompts", len(fresh_ids), len(clean), dup_reasons + dirty)
    return clean


def _difficulty(
    items, cfg: SynthConfig, cache, consensus, verifier: Verifier, run_dir, show_progress, roles
) -> dict[str, float]:
    ref_cfg = cfg.difficulty.reference
    if ref_cfg is None or not items:
        return {}
    reference = build_teacher(ref_cfg, cache, "reference", run_dir, show_progress)
    roles["reference"] = reference
    k = cfg.difficulty.samples
    completions = reference.complete(
        sample_requests(items, cfg, k, ref_cfg.temperature, ref_cfg.max_tokens, "reference"), "difficulty"
    )
    samples = _candidates(items, completions, k)
    verifier.verify(items, samples, references=dict(consensus), vote=False)
    return {item_id: round(1.0 - rate, 4) for item_id, rate in pass_rates(items, samples).items()}


def _quality(
    items,
    kept: dict[str, list[Candidate]],
    cfg: SynthConfig,
    cache,
    run_dir,
    show_progress,
    roles,
    funnel: Funnel,
) -> dict[str, float]:
    judge_cfg = cfg.quality.judge
    if judge_cfg is None or not items:
        return {}
    judge = build_scorer(judge_cfg, cache, "judge", run_dir, show_progress)
    roles["judge"] = judge
    pairs = [(i, c) for i in items for c in kept[i.id]]
    scores = judge.score_many([(i.prompt, c.text) for i, c in pairs], "quality")
    quality: dict[str, float] = {}
    dropped = Counter()
    for (i, c), score in zip(pairs, scores):
        key = f"{i.id}#{c.index}"
        if score is None:
            dropped["judge_failed"] += 1
        elif score < cfg.quality.min:
            dropped["low_quality"] += 1
        else:
            quality[key] = round(score, 4)
    for i in items:
        kept[i.id] = [c for c in kept[i.id] if f"{i.id}#{c.index}" in quality]
    funnel.add("quality", "answers", len(pairs), len(quality), dropped)
    return quality


def _label(items: list[Item], cfg: SynthConfig, cache, run_dir, show_progress, roles) -> dict:
    unlabeled = [i for i in items if i.label is None]
    asked = 0
    if unlabeled and cfg.labels.labeler is not None:
        labeler = build_teacher(cfg.labels.labeler, cache, "labeler", run_dir, show_progress)
        roles["labeler"] = labeler
        replies = labeler.complete(
            label_requests(unlabeled, cfg.labels.prompt, cfg.labels.choices, cfg.labels.labeler.max_tokens),
            "labels",
        )
        asked = len(unlabeled)
        for item, reply in zip(unlabeled, replies):
            item.label = pick_label(reply.text, cfg.labels.choices) if reply.error is None else None
    for item in items:
        item.label = item.label or item.domain
    return {"asked_labeler": asked, "by_label": dict(Counter(i.label for i in items))}


def _request_stats(role) -> dict:
    stats = role.stats.to_dict()
    client = getattr(getattr(role, "teacher", role), "client", None)  # a judge asks through its teacher
    if client is not None:
        stats["http"] = client.stats.to_dict()  # attempts and retries, beyond the requests themselves
    return stats


def _atomic_jsonl(path: Path, rows) -> int:
    tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
    count = 0
    with tmp.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
    os.replace(tmp, path)
    return count


def _write_output(out_dir: Path, examples, cfg: SynthConfig, difficulty: dict, quality: dict) -> None:
    def rows():
        for item, c in examples:
            messages = answer_messages(item, cfg, with_instruction=cfg.output.include_instruction)
            messages = [m for m in messages if m["role"] != "system"]
            if cfg.output.system_prompt:
                messages.insert(0, {"role": "system", "content": cfg.output.system_prompt})
            messages.append({"role": "assistant", "content": c.text.strip()})
            yield {
                "messages": messages,
                "id": f"{item.id}#{c.index}",
                "seed_id": item.seed_id,
                "parent_id": item.parent_id,
                "evolution": item.evolution,
                "source": item.source,
                "domain": item.domain,
                "label": item.label,
                "verified_by": c.method,
                "answer": c.answer,
                "difficulty": difficulty.get(item.id),
                "quality": quality.get(f"{item.id}#{c.index}"),
            }

    # The temporary file's name does not match `*.jsonl*`, so SFT never reads a half-written output.
    tmp = out_dir / "details" / "sft.partial"
    _atomic_jsonl(tmp, rows())
    os.replace(tmp, out_dir / OUTPUT_NAME)


def _write_details(
    out_dir: Path, prompts: list[Item], candidates: dict[str, list[Candidate]], cfg: SynthConfig
) -> None:
    details = out_dir / "details"
    _atomic_jsonl(
        details / "prompts.jsonl",
        (
            {
                "id": i.id,
                "prompt": i.prompt,
                "seed_id": i.seed_id,
                "parent_id": i.parent_id,
                "evolution": i.evolution,
                "domain": i.domain,
                "reference": i.reference,
                "verified_answers": sum(c.verified for c in candidates.get(i.id, [])),
            }
            for i in prompts
        ),
    )
    if cfg.output.write_candidates:
        _atomic_jsonl(
            details / "candidates.jsonl",
            (
                {
                    "item_id": c.item_id,
                    "index": c.index,
                    "verified": c.verified,
                    "reason": c.reason,
                    "method": c.method,
                    "answer": c.answer,
                    "error": c.error,
                    "text": c.text,
                }
                for cs in candidates.values()
                for c in cs
            ),
        )
