"""Draw the report's plots (matplotlib, PNG) and write a self-contained index.html."""

from __future__ import annotations

import html
import json
from pathlib import Path

from infir.report.collect import collect
from infir.stages import text_checkpoint_stages
from infir.report.rewards import plot_reward_curve


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_funnel(funnel: list[dict], path: Path) -> bool:
    """Documents and tokens after each curation step (tokens are estimates until tokenized)."""
    rows = [r for r in funnel if r.get("docs") is not None]
    if not rows:
        return False
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 0.45 * len(rows) + 1.4), sharey=True)
    names = [r["step"] for r in rows][::-1]
    for ax, key, color, label in (
        (axes[0], "docs", "#4c78a8", "documents"),
        (axes[1], "tokens", "#f58518", "tokens"),
    ):
        values = [r.get(key) or 0 for r in rows][::-1]
        ax.barh(names, values, color=color)
        for y, v in enumerate(values):
            ax.text(v, y, f" {v:,}", va="center", fontsize=8)
        ax.set_xlabel(label)
        ax.margins(x=0.25)
    fig.suptitle("Data funnel")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def plot_losses(metrics: dict[str, list[dict]], path: Path) -> bool:
    if not metrics:
        return False
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4.2))
    offset = 0
    for stage in text_checkpoint_stages():
        if stage == "rl":  # a policy-gradient surrogate, not nats/token: it has its own reward curve
            continue
        rows = [r for r in metrics.get(stage, []) if "loss" in r]
        if not rows:
            continue
        steps = [offset + r["step"] for r in rows]
        ax.plot(steps, [r["loss"] for r in rows], label=f"{stage} train")
        val = [r for r in metrics[stage] if r.get("val_loss") is not None]
        if val:
            ax.plot(
                [offset + r["step"] for r in val], [r["val_loss"] for r in val], "o--", label=f"{stage} val"
            )
        offset = steps[-1]
    ax.set_xlabel("optimizer step (stages laid end to end)")
    ax.set_ylabel("loss (nats/token)")
    ax.set_title("Training loss")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _headline(metrics: dict) -> tuple[str, float] | None:
    for key in ("accuracy", "exact_match", "pass@1", "acc", "strict_accuracy"):
        if isinstance(metrics.get(key), (int, float)):
            return key, float(metrics[key])
    return None


def plot_eval(results: dict, path: Path, intervals: dict | None = None) -> bool:
    trained = text_checkpoint_stages()
    stages = [s for s in trained if s in results] + [s for s in results if s not in trained]
    tasks = sorted({t for s in stages for t in results[s]})
    if not stages or not tasks:
        return False
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(5, 1.6 * len(stages) * max(1, len(tasks)) / 2 + 2), 4))
    width = 0.8 / len(tasks)
    for i, task in enumerate(tasks):
        vals, errs = [], [[], []]
        for s in stages:
            head = _headline(results[s].get(task, {}))
            vals.append(head[1] if head else 0.0)
            ci = (intervals or {}).get(s, {}).get(task, {}).get("ci95")
            errs[0].append(max(0.0, vals[-1] - ci[0]) if ci else 0.0)
            errs[1].append(max(0.0, ci[1] - vals[-1]) if ci else 0.0)
        xs = [j + i * width for j in range(len(stages))]
        bars = ax.bar(xs, vals, width, label=task, yerr=errs if any(errs[0] + errs[1]) else None, capsize=3)
        for b, v in zip(bars, vals):
            ax.text(b.get_x() + b.get_width() / 2, v, f"{v:.2f}", ha="center", va="bottom", fontsize=8)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(stages))], stages)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("accuracy")
    ax.set_title("Held-out evaluation after each stage")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _table(headers: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, dict):
        return ", ".join(f"{k}: {_fmt(x)}" for k, x in v.items())
    return "" if v is None else str(v)


CSS = """body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:14px}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}
th{background:#f3f3f3}img{max-width:100%;border:1px solid #eee}pre{background:#f7f7f7;padding:8px;white-space:pre-wrap;
font-size:12px}.ok{color:#2a7a2a}.bad{color:#b22}"""


def write_report(run_dir: Path, title: str | None = None, samples_per_task: int = 3) -> Path:
    run_dir = Path(run_dir)
    data = collect(run_dir, samples_per_task)
    out = run_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    parts = [
        f"<h1>{html.escape(title or 'infir run report')}</h1>",
        f"<p>Run directory: <code>{html.escape(str(run_dir))}</code></p>",
    ]
    stage_rows = [
        [name, "complete" if info["complete"] else "incomplete", info["summary"].get("seconds")]
        for name, info in data["stages"].items()
        if name != "report"
    ]
    parts += ["<h2>Stages</h2>", _table(["stage", "status", "seconds"], stage_rows)]
    if plot_funnel(data["funnel"], out / "funnel.png"):
        parts += [
            "<h2>Data funnel</h2>",
            '<img src="funnel.png" alt="data funnel">',
            _table(
                ["step", "documents", "tokens", "dropped by reason"],
                [[r["step"], r.get("docs"), r.get("tokens"), r.get("dropped", "")] for r in data["funnel"]],
            ),
        ]
    if plot_losses(data["metrics"], out / "loss.png"):
        rows = []
        for stage in text_checkpoint_stages():
            s = data["stages"].get(stage, {}).get("summary")
            if s:
                rows.append(
                    [
                        stage,
                        s.get("steps"),
                        s.get("tokens"),
                        s.get("loss"),
                        s.get("val_loss"),
                        s.get("tokens_per_s"),
                        s.get("mfu"),
                    ]
                )
        parts += [
            "<h2>Training</h2>",
            '<img src="loss.png" alt="loss curves">',
            _table(["stage", "steps", "tokens", "final loss", "val loss", "tokens/s", "MFU"], rows),
        ]
    if plot_reward_curve(data["metrics"].get("rl", []), out / "reward.png"):
        rl = data["stages"].get("rl", {}).get("summary", {})
        parts += [
            "<h2>Reinforcement learning</h2>",
            '<img src="reward.png" alt="RL reward curve">',
            _table(
                [
                    "steps",
                    "reward (first)",
                    "reward (last)",
                    "rollout accuracy (first)",
                    "rollout accuracy (last)",
                    "tokens/s",
                ],
                [
                    [
                        rl.get(k)
                        for k in (
                            "steps",
                            "reward_first",
                            "reward_last",
                            "accuracy_first",
                            "accuracy_last",
                            "tokens_per_s",
                        )
                    ]
                ],
            ),
        ]
    if data["eval"]:
        plot_eval(data["eval"], out / "eval.png", data["intervals"])
        parts += ["<h2>Evaluation</h2>", '<img src="eval.png" alt="evaluation by stage">']
        if data["intervals"]:
            rows = [
                [stage, task, s["accuracy"], f"{s['ci95'][0]:.3f} .. {s['ci95'][1]:.3f}", s["stderr"], s["n"]]
                for stage, tasks in data["intervals"].items()
                for task, s in tasks.items()
            ]
            parts += [
                "<p>Accuracy with its 95% (Wilson) interval.</p>",
                _table(["stage", "task", "accuracy", "95% interval", "standard error", "problems"], rows),
            ]
        gain_rows = [
            [
                task,
                f"{g['from']} → {g['to']}",
                f"{100 * g['diff']:+.1f}",
                f"{100 * g['stderr']:.1f}",
                f"{g['z']:.1f}",
                g["improved"],
                g["regressed"],
            ]
            for task, gains in data["gains"].items()
            for g in gains
        ]
        if gain_rows:
            parts += [
                "<p>Each stage against the one before it on the same problems (paired): the difference in "
                "points, its standard error and z = difference / standard error (|z| >= 2: not noise).</p>",
                _table(
                    [
                        "task",
                        "stages",
                        "difference (points)",
                        "standard error (points)",
                        "z",
                        "problems newly right",
                        "problems newly wrong",
                    ],
                    gain_rows,
                ),
            ]
        rows = []
        for stage, tasks in data["eval"].items():
            for task, metrics in tasks.items():
                rows.append(
                    [stage, task, {k: v for k, v in metrics.items() if not isinstance(v, (dict, list))}]
                )
        parts += [_table(["stage", "task", "metrics"], rows)]
        for task, examples in data["examples"].items():
            parts.append(f"<h3>The same problems after each stage: {html.escape(task)}</h3>")
            for ex in examples:
                lines = [f"<pre>{html.escape(str(ex['prompt'])[-600:])}"]
                for stage, answer in ex["answers"].items():
                    cls = "ok" if answer.get("correct") else "bad"
                    lines.append(
                        f"\n<b>{html.escape(stage)}:</b> {html.escape(str(answer.get('output', '')))}"
                        f" <span class='{cls}'>(extracted {html.escape(str(answer.get('extracted')))}, "
                        f"{'correct' if answer.get('correct') else 'wrong'})</span>"
                    )
                parts.append("".join(lines) + "</pre>")
    from infir.export.report import EDGE_COLUMNS, edge_rows

    edge = edge_rows(run_dir / "export")
    if edge:
        parts += [
            "<h2>Edge deployment</h2>",
            _table(list(EDGE_COLUMNS), [[row.get(c) for c in EDGE_COLUMNS] for row in edge]),
        ]
    from infir.vl.report import skill_columns_and_rows

    vl_columns, vl_rows = skill_columns_and_rows(run_dir / "vl")
    if vl_rows:
        parts += ["<h2>Vision-language skills after each curriculum stage</h2>", _table(vl_columns, vl_rows)]
    extra = {n: i["summary"] for n, i in data["stages"].items() if n not in ("report",)}
    parts += [
        "<h2>Stage summaries</h2>",
        f"<pre>{html.escape(json.dumps(extra, indent=1, default=str)[:20000])}</pre>",
    ]
    page = f"<!doctype html><html><head><meta charset='utf-8'><title>infir report</title><style>{CSS}</style></head><body>{''.join(parts)}</body></html>"
    (out / "index.html").write_text(page)
    return out / "index.html"
