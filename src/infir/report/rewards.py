"""The RL stage's reward curve: mean reward (± its spread within the step) and rollout accuracy per step."""

from __future__ import annotations

from pathlib import Path


def plot_reward_curve(rows: list[dict], path: Path, window: int = 5) -> bool:
    """Per-step mean reward with a ±std band, its running mean over `window` steps, and the fraction of
    rollouts judged correct. Rollouts are sampled, so single steps are noisy; the running mean is the trend."""
    rows = [r for r in rows if "reward" in r]
    if not rows:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in rows]
    reward = [r["reward"] for r in rows]
    std = [r.get("reward_std", 0.0) for r in rows]
    smooth = [
        sum(reward[max(0, i - window + 1) : i + 1]) / len(reward[max(0, i - window + 1) : i + 1])
        for i in range(len(reward))
    ]
    fig, ax = plt.subplots(figsize=(8, 4.2))
    ax.fill_between(
        steps,
        [m - s for m, s in zip(reward, std)],
        [m + s for m, s in zip(reward, std)],
        color="#4c78a8",
        alpha=0.15,
        label="reward ± std (rollouts of the step)",
    )
    ax.plot(steps, reward, color="#4c78a8", alpha=0.5, lw=1, label="mean reward")
    ax.plot(steps, smooth, color="#4c78a8", lw=2, label=f"mean reward, running mean of {window}")
    if all("accuracy" in r for r in rows):
        ax.plot(steps, [r["accuracy"] for r in rows], color="#f58518", lw=1.5, label="rollout accuracy")
    ax.set_xlabel("RL step")
    ax.set_ylabel("reward / accuracy")
    ax.set_title("RL reward curve")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
