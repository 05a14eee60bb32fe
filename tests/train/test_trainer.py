import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from infir.train.config import OptimizerConfig, ScheduleConfig, TrainConfig
from infir.train.optim import module_lr, param_groups
from infir.train.parallel import DistInfo
from infir.train.schedule import lr_factor
from infir.train.objectives import count_targets, token_loss_sum
from infir.train.trainer import Trainer
from tests.train.helpers import RandomTokens, losses, tiny_model

RUN_TOY = Path(__file__).with_name("run_toy.py")


def fit(tmp_path, name, **overrides):
    torch.manual_seed(0)
    cfg = TrainConfig(
        **{
            "max_steps": 12,
            "global_batch_size": 8,
            "micro_batch_size": 8,
            "seq_len": 32,
            "log_every": 1,
            "optimizer": {"lr": 3e-3},
            "peak_flops": 1e12,
            "precision": "fp32",
            **overrides,
        }
    )
    trainer = Trainer(
        cfg,
        tiny_model(),
        None,
        RandomTokens(64, 32, 8),
        tmp_path / name,
        DistInfo(),
        val_data=[RandomTokens(64, 32, 8, seed=99).batch_at(0)],
        log=lambda m: None,
    )
    return trainer.fit(), losses(tmp_path / name)


def test_loss_falls_and_metrics_have_the_fields(tmp_path):
    result, curve = fit(tmp_path, "a", max_steps=30)
    assert curve[30] < curve[1] - 0.5
    rec = json.loads((tmp_path / "a" / "metrics.jsonl").read_text().splitlines()[0])
    assert {"step", "loss", "lr", "grad_norm", "tokens", "tokens_per_s", "mfu"} <= rec.keys()
    assert result.val_loss is not None and result.tokens == 30 * 8 * 32


def test_logged_loss_is_the_mean_since_the_previous_log_line(tmp_path):
    _, every = fit(tmp_path, "every")
    _, windows = fit(tmp_path, "windows", log_every=4)
    assert sorted(windows) == [4, 8, 12]
    for end in windows:
        mean = sum(every[s] for s in range(end - 3, end + 1)) / 4
        assert windows[end] == pytest.approx(mean, rel=1e-5)


def test_gradient_accumulation_matches_one_big_batch(tmp_path):
    _, big = fit(tmp_path, "big", micro_batch_size=8)
    _, acc = fit(tmp_path, "acc", micro_batch_size=2)
    for step in big:
        assert acc[step] == pytest.approx(big[step], rel=1e-5, abs=1e-6)


def test_loss_normalises_by_target_tokens():
    logits = torch.randn(2, 5, 7)
    labels = torch.randint(0, 7, (2, 5))
    labels[0, 2] = -100
    total = token_loss_sum(logits, labels)
    assert count_targets(labels) == 7
    manual = sum(
        torch.nn.functional.cross_entropy(logits[b, t - 1 : t], labels[b, t : t + 1], reduction="sum")
        for b in range(2)
        for t in range(1, 5)
        if labels[b, t] != -100
    )
    assert total.item() == pytest.approx(float(manual), rel=1e-5)


def test_schedules():
    cos = ScheduleConfig(kind="cosine", warmup_steps=10, min_lr_ratio=0.1)
    assert lr_factor(cos, 0, 100) == pytest.approx(0.1)
    assert lr_factor(cos, 9, 100) == pytest.approx(1.0)
    assert lr_factor(cos, 100, 100) == pytest.approx(0.1)
    wsd = ScheduleConfig(kind="wsd", warmup_steps=0, decay_ratio=0.2, min_lr_ratio=0.0)
    assert lr_factor(wsd, 50, 100) == 1.0 and lr_factor(wsd, 79, 100) == 1.0
    assert lr_factor(wsd, 99, 100) == pytest.approx(0.0)
    assert 0 < lr_factor(wsd, 90, 100) < 1
    lin = ScheduleConfig(kind="linear", warmup_steps=0)
    assert lr_factor(lin, 0, 10) == 1.0 and lr_factor(lin, 10, 10) == 0.0
    assert [lr_factor(lin, s, 10) for s in range(10)] == sorted(
        [lr_factor(lin, s, 10) for s in range(10)], reverse=True
    )


def test_module_lr_zero_freezes_and_groups_skip_decay_for_norms():
    model = tiny_model()
    cfg = OptimizerConfig(lr=1e-3, module_lr={"model.layers.0": 0.0, "model.layers.1.mlp": 5e-4})
    assert module_lr("model.layers.0.mlp.up_proj.weight", cfg) == 0.0
    assert module_lr("model.layers.1.mlp.up_proj.weight", cfg) == 5e-4
    assert module_lr("model.layers.10.mlp.up_proj.weight", cfg) == 1e-3
    from infir.train.optim import freeze_by_lr

    freeze_by_lr(model, cfg)
    groups = param_groups(model, cfg)
    grouped = {id(p) for g in groups for p in g["params"]}
    for name, p in model.named_parameters():
        assert (id(p) in grouped) == (not name.startswith("model.layers.0."))
    for g in groups:
        assert all(p.ndim >= 2 for p in g["params"]) == (g["weight_decay"] > 0)


def test_final_loads_with_auto_class_and_steps_hold_sharded_state(tmp_path):
    torch.manual_seed(0)
    cfg = TrainConfig(
        max_steps=3,
        global_batch_size=8,
        micro_batch_size=8,
        seq_len=32,
        optimizer={"lr": 3e-3},
        peak_flops=1e12,
        precision="fp32",
    )
    trainer = Trainer(
        cfg, tiny_model(), None, RandomTokens(64, 32, 8), tmp_path / "c", DistInfo(), log=lambda m: None
    )
    trainer.fit()
    trainer.save_final(tmp_path / "c" / "final")
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tmp_path / "c" / "final")
    assert model.config.num_hidden_layers == 2
    for name, value in model.state_dict().items():
        assert torch.equal(value, trainer.raw_model.state_dict()[name]), name
    step = sorted((tmp_path / "c" / "checkpoints").iterdir())[-1]
    assert (step / "state" / ".metadata").is_file() and (step / "checksums.json").is_file()
    assert (tmp_path / "c" / "final" / "checksums.json").is_file()


def _toy(out: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    return subprocess.Popen(
        [sys.executable, str(RUN_TOY), str(out), "--steps", "24", "--save-every", "4", *extra],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def test_kill_9_then_rerun_gives_the_uninterrupted_losses_bitwise(tmp_path):
    ref = _toy(tmp_path / "ref")
    assert ref.wait(timeout=300) == 0, ref.stderr.read().decode()[-2000:]
    kill_at = random.Random().randint(6, 20)
    victim = _toy(tmp_path / "run", "--step-sleep", "0.15")
    deadline = time.time() + 300
    while time.time() < deadline:
        metrics = tmp_path / "run" / "metrics.jsonl"
        if metrics.exists() and len(metrics.read_text().splitlines()) >= kill_at:
            break
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    rerun = _toy(tmp_path / "run")
    out, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err.decode()[-2000:]
    resumed_from = json.loads(out.decode().strip().splitlines()[-1])["resumed_from"]
    assert resumed_from is not None and 0 < resumed_from <= kill_at, (kill_at, resumed_from)
    expected, got = losses(tmp_path / "ref"), losses(tmp_path / "run")
    assert sorted(got) == list(range(1, 25))
    assert all(got[s] == expected[s] for s in range(1, 25)), (kill_at, resumed_from)  # bitwise


def test_bf16_autocast_trains_and_auto_resolves(tmp_path):
    from infir.train.config import resolve_precision

    assert resolve_precision("fp32", torch.device("cpu")) == "fp32"
    assert resolve_precision("auto", torch.device("cpu")) in ("fp32", "bf16")
    result, curve = fit(tmp_path, "bf16", max_steps=20, precision="bf16")
    assert curve[20] < curve[1] - 0.3
    import torch.distributed.checkpoint as dcp

    step = sorted((tmp_path / "bf16" / "checkpoints").iterdir())[-1]
    saved = dcp.FileSystemReader(str(step / "state")).read_metadata().state_dict_metadata
    model_entries = {k: v for k, v in saved.items() if k.startswith("model.")}
    assert model_entries and all(
        v.properties.dtype == torch.float32 for v in model_entries.values()
    )  # fp32 masters
