"""Checkpoints carry checksums: a damaged step is skipped for the newest good one, a damaged final model
stops the stage that reads it naming the file, and a full disk is reported as such."""

import errno
import json
import subprocess
from pathlib import Path

import pytest
import torch

from infir.integrity import CorruptCheckpoint, verify
from infir.train import checkpoint as ckpt
from infir.train.config import TrainConfig
from infir.train.parallel import DistInfo
from infir.train.trainer import Trainer
from tests.train.helpers import RandomTokens, losses, tiny_model


def trainer(out: Path, steps: int, log=lambda m: None) -> Trainer:
    torch.manual_seed(0)
    cfg = TrainConfig(
        max_steps=steps,
        global_batch_size=8,
        micro_batch_size=8,
        seq_len=32,
        log_every=1,
        save_every=4,
        keep_last=3,
        optimizer={"lr": 3e-3},
        peak_flops=1e12,
        precision="fp32",
    )
    return Trainer(cfg, tiny_model(), None, RandomTokens(64, 32, 8), out, DistInfo(), log=log)


def stop_after(t: Trainer, steps: int) -> None:
    """Train `steps` steps of `t`'s schedule, saving as `fit` would, then stop as a kill would."""
    it = iter(t.data)
    for _ in range(steps):
        t.train_step(next(it))
        t.step += 1
        if t.step % t.cfg.save_every == 0:
            t.save()


def shard_file(step_dir: Path) -> Path:
    return sorted((step_dir / "state").glob("*.distcp"))[0]


def test_a_damaged_latest_step_is_named_and_resume_falls_back_to_the_previous_one(tmp_path):
    run = tmp_path / "run"
    trainer(run, 12).fit()  # leaves steps 4, 8 and 12
    for step in (4, 8, 12):
        manifest = json.loads((run / "checkpoints" / f"step-{step:08d}" / "checksums.json").read_text())
        assert "training_state.pt" in manifest["files"] and any(
            f.startswith("state/") for f in manifest["files"]
        )
    bad = shard_file(run / "checkpoints" / "step-00000012")
    data = bytearray(bad.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad.write_bytes(bytes(data))
    with pytest.raises(CorruptCheckpoint, match=str(bad)):
        verify(run / "checkpoints" / "step-00000012")
    said = []
    assert (
        ckpt.latest_good_checkpoint(run / "checkpoints", said.append) == run / "checkpoints" / "step-00000008"
    )
    assert len(said) == 1 and str(bad) in said[0]


def test_resume_after_a_damaged_step_ends_with_the_uninterrupted_losses(tmp_path):
    ref = tmp_path / "ref"
    trainer(ref, 16).fit()
    run = tmp_path / "run"
    # 12 steps of the 16-step schedule with checkpoints at 4, 8 and 12, then stop as a kill would.
    stop_after(trainer(run, 16), 12)
    latest = run / "checkpoints" / "step-00000012"
    (latest / "training_state.pt").write_bytes(b"")  # truncated to nothing
    said = []
    resumed = trainer(run, 16, log=said.append)
    assert resumed.resumed_from == 8
    assert any("training_state.pt" in line and "truncated" in line for line in said)
    resumed.fit()
    got, want = losses(run), losses(ref)
    for step in range(9, 17):
        assert got[step] == want[step], step


def test_a_damaged_final_model_stops_the_stage_that_reads_it(tmp_path):
    from infir.config import load_recipe
    from infir.run import MARKER, FINAL, StageContext
    from infir.stages import STAGES
    from infir.stages import resolve_start

    t = trainer(tmp_path / "run" / "pretrain", 4)
    t.fit()
    t.save_final(tmp_path / "run" / "pretrain" / FINAL)
    (tmp_path / "run" / "pretrain" / MARKER).write_text(json.dumps({"fingerprint": "x"}))
    ctx = StageContext(recipe=load_recipe("tiny", []), run_dir=tmp_path / "run", stage=STAGES["anneal"])
    assert resolve_start(ctx) == str(tmp_path / "run" / "pretrain" / FINAL)
    weights = tmp_path / "run" / "pretrain" / FINAL / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2 :] = bytes(len(data) - len(data) // 2)  # zero the second half
    weights.write_bytes(bytes(data))
    with pytest.raises(CorruptCheckpoint, match="model.safetensors"):
        resolve_start(ctx)
    weights.write_bytes(bytes(data[: len(data) // 3]))
    with pytest.raises(CorruptCheckpoint, match="truncated"):
        resolve_start(ctx)


def test_a_full_disk_during_a_checkpoint_says_so_and_names_the_folder(tmp_path):
    small = tmp_path / "small"
    small.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=160k", "tmpfs", str(small)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {mounted.stderr.decode().strip()}")
    try:
        t = trainer(small / "run", 4)
        with pytest.raises(OSError) as err:
            t.fit()
        assert err.value.errno == errno.ENOSPC
        assert "no space left on device" in str(err.value) and str(small / "run" / "checkpoints") in str(
            err.value
        )
        assert not list((small / "run" / "checkpoints").glob(".step-*"))  # the partial folder is gone
    finally:
        subprocess.run(["umount", str(small)], capture_output=True)


def test_a_parameter_without_optimizer_state_has_none_after_resume(tmp_path):
    def with_unused(out: Path, steps: int) -> Trainer:
        torch.manual_seed(0)
        model = tiny_model()
        model.unused = torch.nn.Linear(
            4, 4
        )  # trainable, never in the forward pass: AdamW keeps no state for it
        cfg = TrainConfig(
            max_steps=steps,
            global_batch_size=8,
            micro_batch_size=8,
            seq_len=32,
            log_every=1,
            save_every=4,
            optimizer={"lr": 3e-3},
            peak_flops=1e12,
            precision="fp32",
        )
        return Trainer(cfg, model, None, RandomTokens(64, 32, 8), out, DistInfo(), log=lambda m: None)

    ref = with_unused(tmp_path / "ref", 12)
    ref.fit()
    stop_after(with_unused(tmp_path / "run", 12), 8)
    resumed = with_unused(tmp_path / "run", 12)
    assert resumed.resumed_from == 8
    assert all(p not in resumed.optimizer.state for p in resumed.raw_model.unused.parameters())
    resumed.fit()
    got, want = losses(tmp_path / "run"), losses(tmp_path / "ref")
    assert all(got[s] == want[s] for s in range(9, 13))
