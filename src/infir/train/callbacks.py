"""What watches a training run without changing it: the progress bar, TensorBoard, Weights & Biases, and
any per-record hook a caller adds (`OnLog`). The trainer calls every callback at the same points:

  on_fit_start(trainer)         before the first step (after a resume, `trainer.step` is where it resumed)
  on_step(trainer, loss)        after every optimizer step, on every rank
  on_log(trainer, record)       on the main rank, for every record written to metrics.jsonl during training
  on_fit_end(trainer)           after the last step (or when training stops with an error)

`default_callbacks` builds those a `TrainConfig` asks for (`progress`, `loggers`) on the main rank.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable


class Callback:
    def on_fit_start(self, trainer) -> None:
        pass

    def on_step(self, trainer, loss: float) -> None:
        pass

    def on_log(self, trainer, record: dict) -> None:
        pass

    def on_fit_end(self, trainer) -> None:
        pass


class OnLog(Callback):
    """`fn(step, record)` for every logged record (benchmarks and tests time or pace steps with it)."""

    def __init__(self, fn: Callable[[int, dict], None]):
        self.fn = fn

    def on_log(self, trainer, record: dict) -> None:
        self.fn(record["step"], record)


class ProgressBar(Callback):
    """A live bar with the step, the last loss and the time left, on the main rank."""

    def on_fit_start(self, trainer) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            TextColumn("[bold]train"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            transient=False,
        )
        self.task = self.progress.add_task(
            "train", total=trainer.cfg.max_steps, completed=trainer.step, loss="-"
        )
        self.progress.start()

    def on_step(self, trainer, loss: float) -> None:
        self.progress.update(self.task, advance=1, loss=f"{loss:.4f}")

    def on_fit_end(self, trainer) -> None:
        self.progress.stop()


def _scalars(record: dict) -> dict:
    return {k: v for k, v in record.items() if k != "step" and isinstance(v, (int, float))}


class TensorBoard(Callback):
    def __init__(self, out_dir: Path):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(Path(out_dir) / "tensorboard"))

    def on_log(self, trainer, record: dict) -> None:
        for k, v in _scalars(record).items():
            self.writer.add_scalar(f"train/{k}", v, record["step"])

    def on_fit_end(self, trainer) -> None:
        self.writer.close()


class Wandb(Callback):
    def __init__(self, out_dir: Path, config: dict):
        import wandb

        self.run = wandb.init(project="infir", dir=str(out_dir), config=config)

    def on_log(self, trainer, record: dict) -> None:
        self.run.log(_scalars(record), step=record["step"])

    def on_fit_end(self, trainer) -> None:
        self.run.finish()


def default_callbacks(cfg, out_dir: Path, is_main: bool, log: Callable[[str], None]) -> list[Callback]:
    """The progress bar and the external loggers `cfg` asks for, on the main rank only."""
    if not is_main:
        return []
    callbacks: list[Callback] = [ProgressBar()] if cfg.progress else []
    for name in cfg.loggers:
        try:
            callbacks.append(
                TensorBoard(out_dir) if name == "tensorboard" else Wandb(out_dir, cfg.model_dump(mode="json"))
            )
        except ImportError as exc:
            log(f"logger {name!r} asked for but not installed ({exc}); pip install 'infir[log]'")
    return callbacks
