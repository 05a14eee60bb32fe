"""Synthesis with verification on GSM8K train seeds: precision and recall, throughput, kill and resume.

    python benchmarks/synth_verify.py [--seeds 300] [--n 4] [--wrong 0.3] [--concurrency 16] [--latency 0.05]

A loopback OpenAI-compatible server plays the teacher: it answers GSM8K train questions with their worked
solutions, `--wrong` of them with the final number shifted, in varied final-answer formats, and records
which answers were wrong (the ground truth). Measured:

1. verification: the share of correct answers in the kept set (precision) and the share of the teacher's
   correct answers that verification kept (recall), with the GSM8K reference (math-verify) and without it
   (majority vote over the N candidates);
2. requests/s of the teacher client at `--concurrency` against concurrency 1 (the peer), against a server
   in another process that takes `--latency` seconds per answer (as a model server would), and with no
   latency (the client's own overhead);
3. a run killed (SIGKILL) after a third of its requests, then resumed: how many requests were answered
   twice (must be 0).

Ends with one JSON line (`speedup_vs_concurrency_1` is the throughput ratio).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from infir.synth.config import DEFAULT_INSTRUCTIONS, SynthConfig, TeacherConfig
from infir.synth.loopback import LoopbackServer, ReferenceTeacher
from infir.synth.pipeline import synthesize
from infir.synth.teachers import ChatRequest, OpenAITeacher

REPO = Path(__file__).resolve().parents[1]
STRIP = (DEFAULT_INSTRUCTIONS["math"],)


def shared_dir() -> Path:
    path = Path(os.environ.get("INFIR_SHARED", REPO.parent / "shared"))
    if not (path / "benchmarks" / "gsm8k" / "train.jsonl").is_file():
        raise SystemExit(f"GSM8K train is missing under {path}; set INFIR_SHARED")
    return path


def config(seeds: Path, url: str, n: int, concurrency: int, reference: bool) -> SynthConfig:
    return SynthConfig.model_validate(
        {
            "seeds": [
                {
                    "type": "jsonl",
                    "path": str(seeds),
                    "name": "gsm8k",
                    **({"answer_field": "answer", "answer_format": "gsm8k"} if reference else {}),
                }
            ],
            "teacher": {
                "type": "openai",
                "base_url": url,
                "model": "test-teacher",
                "concurrency": concurrency,
            },
            "generation": {"n": n},
            "evolve": {"enabled": False},
            "decontam": {"enabled": False},
        }
    )


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def verification(seeds: Path, records: list[dict], args, work: Path, reference: bool) -> dict:
    teacher = ReferenceTeacher.from_gsm8k(records, wrong_fraction=args.wrong, seed=args.seed, strip=STRIP)
    out = work / ("reference" if reference else "majority")
    with LoopbackServer(teacher) as server:
        summary = synthesize(
            config(seeds, server.url, args.n, args.concurrency, reference), out, show_progress=False
        )
    prompts = {r["id"]: " ".join(r["prompt"].split()) for r in read_jsonl(out / "details" / "prompts.jsonl")}
    truth = lambda item_id, text: teacher.truth[(prompts[item_id], text)]  # noqa: E731
    candidates = read_jsonl(out / "details" / "candidates.jsonl")
    correct = [c for c in candidates if truth(c["item_id"], c["text"])]
    kept = read_jsonl(out / "sft.jsonl")
    kept_right = sum(truth(r["seed_id"], r["messages"][-1]["content"]) for r in kept)
    return {
        "candidates": len(candidates),
        "teacher_wrong_share": round(1 - len(correct) / len(candidates), 4),
        "verified": summary["verify"]["verified"],
        "kept": len(kept),
        "kept_precision": round(kept_right / max(len(kept), 1), 4),
        "verified_precision": round(
            sum(truth(c["item_id"], c["text"]) for c in candidates if c["verified"])
            / max(summary["verify"]["verified"], 1),
            4,
        ),
        "recall": round(sum(c["verified"] for c in correct) / max(len(correct), 1), 4),
        "prompts_without_answer": next(r for r in summary["funnel"] if r["step"] == "rejection_sampling")[
            "dropped"
        ].get("no_verified_answer", 0),
        "rejected": summary["verify"]["rejected"],
        "seconds": summary["seconds"],
    }


def _serve(records, args, latency, port_queue, stop):
    teacher = ReferenceTeacher.from_gsm8k(records, wrong_fraction=args.wrong, seed=args.seed, strip=STRIP)
    with LoopbackServer(teacher, latency=latency) as server:
        port_queue.put(server.url)
        stop.wait()


def throughput(records: list[dict], args, work: Path, latency: float, concurrency: int, count: int) -> float:
    """Requests/s of the teacher client (cache included) against a server in another process."""
    ctx = mp.get_context("fork")
    urls, stop = ctx.Queue(), ctx.Event()
    proc = ctx.Process(target=_serve, args=(records, args, latency, urls, stop), daemon=True)
    proc.start()
    try:
        url = urls.get(timeout=60)
        from infir.synth.cache import ResponseCache

        cache = ResponseCache(work / f"tp-{latency}-{concurrency}.sqlite")
        teacher = OpenAITeacher(
            TeacherConfig(type="openai", base_url=url, model="t", concurrency=concurrency),
            cache,
            show_progress=False,
        )
        reqs = [
            ChatRequest(
                [{"role": "user", "content": records[i % len(records)]["question"]}], 0.7, 512, seed=i
            )
            for i in range(count)
        ]
        t0 = time.perf_counter()
        out = teacher.complete(reqs)
        seconds = time.perf_counter() - t0
        assert all(c.error is None for c in out) and teacher.stats.sent == count
        cache.close()
        return count / seconds
    finally:
        stop.set()
        proc.join(10)


CHILD = """
import json, sys
from pathlib import Path
from infir.synth.config import SynthConfig
from infir.synth.pipeline import synthesize
synthesize(SynthConfig.model_validate(json.loads(Path(sys.argv[1]).read_text())), Path(sys.argv[2]),
           show_progress=False)
"""


def kill_and_resume(seeds: Path, records: list[dict], args, work: Path) -> dict:
    teacher = ReferenceTeacher.from_gsm8k(records, wrong_fraction=args.wrong, seed=args.seed, strip=STRIP)
    total = len(records) * args.n
    with LoopbackServer(teacher, latency=0.005, hold_after=total // 3) as server:
        cfg = config(seeds, server.url, args.n, args.concurrency, reference=True)
        (work / "resume.json").write_text(cfg.model_dump_json())
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(work / "resume.json"), str(work / "resume")],
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )
        if not server.hold_reached.wait(600):
            child.kill()
            raise SystemExit("the killed run never reached a third of its requests")
        time.sleep(0.5)  # replies already sent reach the client's cache before the kill
        child.send_signal(signal.SIGKILL)
        child.wait(30)
        before = server.stats.answered
        server.release()
        summary = synthesize(cfg, work / "resume", show_progress=False)
        return {
            "requests_total": total,
            "answered_before_kill": before,
            "unanswered_at_kill": server.stats.held,
            "answered_after_resume": server.stats.answered - before,
            "cached_on_resume": summary["requests"]["teacher"]["cached"],
            "unique_requests_answered": len(server.stats.by_key),
            "repeated_requests": server.stats.repeated,
            "examples": summary["examples"],
        }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=300)
    p.add_argument("--n", type=int, default=4)
    p.add_argument("--wrong", type=float, default=0.3)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--latency", type=float, default=0.05, help="simulated generation seconds per request")
    p.add_argument("--requests", type=int, default=480, help="requests per throughput measurement")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    records = read_jsonl(shared_dir() / "benchmarks" / "gsm8k" / "train.jsonl")[: args.seeds]
    with tempfile.TemporaryDirectory(prefix="synth-bench-") as tmp:
        work = Path(tmp)
        seeds = work / "gsm8k-train.jsonl"
        seeds.write_text("".join(json.dumps(r) + "\n" for r in records))
        result: dict = {
            "seeds": len(records),
            "n": args.n,
            "wrong_fraction": args.wrong,
            "concurrency": args.concurrency,
            "latency_s": args.latency,
        }
        for name, reference in (("reference_math_verify", True), ("majority_vote", False)):
            result[name] = verification(seeds, records, args, work, reference)
            print(f"{name}: {json.dumps(result[name])}", file=sys.stderr)
        rates = {}
        for latency in (args.latency, 0.0):
            for conc in (args.concurrency, 1):
                # Concurrency 1 at the simulated latency is slow: fewer requests give the same rate.
                count = (
                    args.requests if conc > 1 or latency == 0 else max(40, args.requests // args.concurrency)
                )
                rates[f"latency_{latency}_concurrency_{conc}"] = round(
                    throughput(records, args, work, latency, conc, count), 1
                )
                print(
                    f"throughput latency {latency}s concurrency {conc}: "
                    f"{rates[f'latency_{latency}_concurrency_{conc}']} req/s",
                    file=sys.stderr,
                )
        result["requests_per_s"] = rates
        result["speedup_vs_concurrency_1"] = round(
            rates[f"latency_{args.latency}_concurrency_{args.concurrency}"]
            / rates[f"latency_{args.latency}_concurrency_1"],
            2,
        )
        result["speedup_vs_concurrency_1_no_latency"] = round(
            rates[f"latency_0.0_concurrency_{args.concurrency}"] / rates["latency_0.0_concurrency_1"], 2
        )
        result["resume"] = kill_and_resume(seeds, records, args, work)
        print(f"resume: {json.dumps(result['resume'])}", file=sys.stderr)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
