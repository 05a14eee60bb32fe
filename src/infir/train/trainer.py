"""The training loop shared by pretraining, annealing, SFT, RL and the VL curriculum (stages reach it through
`infir.train.fit.fit`, the one entry point).

Reads as: model -> optimizer -> data -> fit. A stage hands in a model, a batch source (an
iterable of dicts with `input_ids`, `labels`, `position_ids` and optional extra model inputs,
holding this rank's share of the global batch, with `state_dict()`/`load_state_dict()`), and the
config; the trainer owns precision, accumulation, clipping, the schedule, metrics.jsonl, checkpoints and
exact resume. Loss is the sum of token losses over the whole global batch divided by its number of
target tokens, so 1 or N ranks and any accumulation give the same update.

The loss is an `Objective` (`infir.train.objectives`; default: next-token cross-entropy). RL plugs its
policy-gradient loss in here; values a batch carries under `"metrics"` (e.g. rollout rewards) are logged
with the step too. What only watches the run (progress bar, TensorBoard, W&B, hooks) is a `Callback`
(`infir.train.callbacks`).
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import torch

from infir.run import MetricsLog
from infir.train import checkpoint as ckpt
from infir.train.callbacks import Callback, default_callbacks
from infir.train.config import TrainConfig, resolve_precision
from infir.train.flops import flops_per_token, peak_flops
from infir.train.objectives import (
    Objective,
    TokenCrossEntropy,
    count_targets,
    language_model_logits,
    token_loss_sum,
)
from infir.train.optim import build_optimizer, freeze_by_lr, set_lr
from infir.train.parallel import (
    DistInfo,
    all_reduce_sum,
    apply_fsdp,
    barrier,
    full_model_state_dict,
    sum_over_ranks,
)
from infir.train.schedule import lr_factor

# Batch keys indexed by image rather than by row; `image_rows` names each image's row so that a
# micro-batch takes the images of its own rows (a row may hold several images, or none).
PER_IMAGE_KEYS = ("pixel_values", "image_sizes", "image_rows")


@dataclass
class FitResult:
    steps: int
    tokens: int
    loss: float | None
    val_loss: float | None
    seconds: float
    tokens_per_s: float
    mfu: float | None
    resumed_from: int | None = None
    extra: dict = field(default_factory=dict)


class Trainer:
    def __init__(
        self,
        cfg: TrainConfig,
        model,
        tokenizer,
        data,
        out_dir: Path,
        info: DistInfo,
        val_data: Iterable[dict] | None = None,
        log: Callable[[str], None] = print,
        objective: Objective | None = None,
        callbacks: Sequence[Callback] = (),
    ):
        cfg = cfg.model_copy(update={"precision": resolve_precision(cfg.precision, info.device)})
        self.cfg, self.tokenizer, self.data, self.info = cfg, tokenizer, data, info
        self.out_dir, self.val_data, self.log = Path(out_dir), val_data, log
        self.objective: Objective = objective if objective is not None else TokenCrossEntropy()
        self.ckpt_root = self.out_dir / "checkpoints"
        self.metrics = MetricsLog(self.out_dir / "metrics.jsonl")
        self.device = info.device
        self.step = 0
        self.tokens_seen = 0
        self.resumed_from: int | None = None
        if cfg.deterministic:
            torch.use_deterministic_algorithms(True)
        self.raw_model = model.to(self.device)
        freeze_by_lr(self.raw_model, cfg.optimizer)
        self.model = self._wrap(self.raw_model)
        self.optimizer = build_optimizer(self.model, cfg.optimizer, self.device)
        self._resume()
        self.autocast = (
            torch.autocast(self.device.type, dtype=torch.bfloat16)
            if cfg.precision == "bf16"
            else contextlib.nullcontext()
        )
        self.flops_per_token = flops_per_token(self.raw_model, cfg.seq_len)
        self.peak = cfg.peak_flops or peak_flops(self.device, cfg.precision)
        self.callbacks = default_callbacks(cfg, self.out_dir, info.is_main, log) + list(callbacks)

    # -- setup -------------------------------------------------------------------------------
    def _wrap(self, model):
        if self.cfg.activation_checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
        if self.info.distributed:
            param_dtype = (
                torch.bfloat16 if self.cfg.precision == "bf16" and self.device.type == "cuda" else None
            )
            model = apply_fsdp(model, self.info, param_dtype)
        if self.cfg.compile:
            model = torch.compile(model)
        return model

    def _resume(self) -> None:
        latest = ckpt.latest_good_checkpoint(self.ckpt_root, self.log) if self.cfg.resume == "auto" else None
        if latest is None:
            if self.info.is_main:
                self.metrics.truncate_after(0)
            return
        state = ckpt.load_checkpoint(latest, self.model, self.optimizer, self.info)
        self.data.load_state_dict(state["data"])
        rng = state["rng"]
        # A run resumed on more ranks than it saved with gives the new ranks the saved ranks' states in turn.
        ckpt.set_rng_state(rng[self.info.rank % len(rng)] if isinstance(rng, list) else rng)
        self.step, self.tokens_seen = state["step"], state["tokens"]
        self.resumed_from = self.step
        if self.info.is_main:
            self.metrics.truncate_after(self.step)
        self.log(f"resumed from {latest} at step {self.step}")

    # -- one optimizer step ------------------------------------------------------------------
    def _forward(self, micro: dict) -> torch.Tensor:
        with self.autocast:
            return self.objective.forward(self.model, micro, self.device)

    def _split(self, batch: dict) -> list[dict]:
        n = batch["input_ids"].size(0)
        mb = self.cfg.micro_batch_size
        image_rows = batch.get("image_rows")
        if image_rows is None:  # one image per row, if any: slice like everything else
            return [
                {k: v[i : i + mb] for k, v in batch.items() if torch.is_tensor(v)} for i in range(0, n, mb)
            ]
        micros = []
        for i in range(0, n, mb):
            micro = {
                k: v[i : i + mb] for k, v in batch.items() if torch.is_tensor(v) and k not in PER_IMAGE_KEYS
            }
            mine = (image_rows >= i) & (image_rows < i + mb)  # the images of this micro-batch's rows
            if mine.any():
                micro.update({k: batch[k][mine] for k in PER_IMAGE_KEYS if k in batch and k != "image_rows"})
            micros.append(micro)
        return micros

    def train_step(self, batch: dict) -> dict:
        self.model.train()
        targets = sum_over_ranks(self.objective.count(batch), info=self.info)[0]
        denom = max(targets, 1.0)
        loss_sum = torch.zeros((), device=self.device)
        micros = self._split(batch)
        for i, micro in enumerate(micros):
            sync = i == len(micros) - 1
            if self.info.distributed and hasattr(self.model, "set_requires_gradient_sync"):
                self.model.set_requires_gradient_sync(sync)
            part = self.objective.loss_sum(self._forward(micro), micro)
            (part / denom * self.info.world_size).backward()  # FSDP averages gradients over ranks
            loss_sum += part.detach()
        grad_norm = self._clip()
        lr = set_lr(self.optimizer, lr_factor(self.cfg.schedule, self.step, self.cfg.max_steps))
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        loss = all_reduce_sum(loss_sum, self.info).item() / denom
        tokens = int(sum_over_ranks(batch["input_ids"].numel(), info=self.info)[0])
        metrics = dict(batch.get("metrics", {}))
        metrics.update(self.objective.pop_metrics())
        return {
            "loss": loss,
            "lr": lr,
            "grad_norm": grad_norm,
            "tokens": tokens,
            "targets": int(targets),
            "metrics": metrics,
        }

    def _clip(self) -> float:
        params = [p for p in self.model.parameters() if p.grad is not None]
        max_norm = self.cfg.optimizer.grad_clip if self.cfg.optimizer.grad_clip else float("inf")
        norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
        if hasattr(norm, "full_tensor"):
            norm = norm.full_tensor()
        return float(norm)

    @torch.no_grad()
    def validate(self) -> float | None:
        if self.val_data is None or self.cfg.val_batches == 0:
            return None
        self.model.eval()
        total = torch.zeros((), device=self.device)
        count = 0.0
        for i, batch in enumerate(self.val_data):
            if i >= self.cfg.val_batches:
                break
            for micro in self._split(batch):  # validation is next-token loss, whatever the objective
                with self.autocast:
                    logits = language_model_logits(self.model, micro, self.device)
                total += token_loss_sum(logits, micro["labels"].to(self.device))
                count += count_targets(micro["labels"])
        total = all_reduce_sum(total, self.info)
        count = sum_over_ranks(count, info=self.info)[0]
        return total.item() / count if count else None

    # -- checkpoints ---------------------------------------------------------------------------
    def save(self) -> Path:
        rng = [None] * self.info.world_size
        if self.info.distributed:
            torch.distributed.all_gather_object(rng, ckpt.rng_state())
        else:
            rng = [ckpt.rng_state()]
        state = {
            "step": self.step,
            "tokens": self.tokens_seen,
            "data": self.data.state_dict(),
            "rng": rng,
            "world_size": self.info.world_size,
            "config": self.cfg.model_dump(mode="json"),
        }
        return ckpt.save_checkpoint(
            self.ckpt_root, self.step, self.model, self.optimizer, state, self.cfg.keep_last, self.info
        )

    def save_final(self, out: Path) -> None:
        """The model as a Hugging Face folder: the one full gather of the weights, on rank 0."""
        model_sd = full_model_state_dict(self.model, self.info)
        if self.info.is_main:
            tmp = ckpt.atomic_dir(out)
            try:
                ckpt.save_hf(self.raw_model, self.tokenizer, tmp, model_sd)
                ckpt.write_manifest(tmp)
            except Exception as exc:
                full = ckpt.no_space_error(exc, tmp)
                shutil.rmtree(tmp, ignore_errors=True)
                if full is not None:
                    raise full from None
                raise
            ckpt.commit_dir(tmp, out)
        barrier(self.info)

    # -- the loop ------------------------------------------------------------------------------
    def fit(self) -> FitResult:
        cfg = self.cfg
        t_start = time.perf_counter()
        # The logged loss is the mean over the steps since the last log line (as transformers' Trainer
        # logs it): with small batches one step's loss says more about its batch than about the model.
        window_t, window_tokens, window_loss, window_steps = time.perf_counter(), 0, 0.0, 0
        last: dict[str, Any] = {}
        total_tokens_run = 0
        data_iter = iter(self.data)
        for cb in self.callbacks:
            cb.on_fit_start(self)
        try:
            while self.step < cfg.max_steps:
                batch = next(data_iter)
                stats = self.train_step(batch)
                self.step += 1
                self.tokens_seen += stats["tokens"]
                window_tokens += stats["tokens"]
                window_loss += stats["loss"]
                window_steps += 1
                total_tokens_run += stats["tokens"]
                if not math.isfinite(stats["loss"]):
                    raise FloatingPointError(f"loss became {stats['loss']} at step {self.step}")
                record = None
                validate_now = (
                    bool(cfg.val_every) and self.step % cfg.val_every == 0 and self.step < cfg.max_steps
                )
                if self.step % cfg.log_every == 0 or self.step == cfg.max_steps or validate_now:
                    elapsed = time.perf_counter() - window_t
                    tps = window_tokens / elapsed if elapsed > 0 else 0.0
                    record = {
                        "step": self.step,
                        "loss": round(window_loss / window_steps, 6),
                        "lr": stats["lr"],
                        "grad_norm": round(stats["grad_norm"], 6),
                        "tokens": self.tokens_seen,
                        "tokens_per_s": round(tps, 1),
                        "mfu": round(tps * self.flops_per_token / self.peak, 5),
                        **stats["metrics"],
                    }
                    window_t, window_tokens, window_loss, window_steps = time.perf_counter(), 0, 0.0, 0
                if validate_now:
                    record["val_loss"] = self.validate()
                if record and self.info.is_main:
                    self.metrics.log(record)
                    for cb in self.callbacks:
                        cb.on_log(self, record)
                last = record or last
                for cb in self.callbacks:
                    cb.on_step(self, stats["loss"])
                if cfg.save_every and self.step % cfg.save_every == 0 and self.step < cfg.max_steps:
                    self.save()
        finally:
            for cb in self.callbacks:
                cb.on_fit_end(self)
        val = self.validate()
        if val is not None and self.info.is_main:
            self.metrics.log({"step": self.step, "val_loss": val})
        seconds = time.perf_counter() - t_start
        tps = total_tokens_run / seconds if seconds > 0 else 0.0
        self.save()
        return FitResult(
            steps=self.step,
            tokens=self.tokens_seen,
            loss=last.get("loss"),
            val_loss=val,
            seconds=round(seconds, 2),
            tokens_per_s=round(tps, 1),
            mfu=round(tps * self.flops_per_token / self.peak, 5) if tps else None,
            resumed_from=self.resumed_from,
        )


def read_metrics(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
