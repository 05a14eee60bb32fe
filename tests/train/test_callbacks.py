"""The trainer's contract with what it runs: an objective is a declared `Objective`, and what only watches
the run is a `Callback`, called at fixed points."""

from infir.rl.grpo import GRPOObjective
from infir.train.callbacks import Callback, OnLog, ProgressBar, default_callbacks
from infir.train.config import TrainConfig
from infir.train.objectives import Objective, TokenCrossEntropy
from infir.train.parallel import DistInfo
from infir.train.trainer import Trainer
from tests.train.helpers import RandomTokens, tiny_model


def test_objectives_are_declared_objectives():
    assert isinstance(TokenCrossEntropy(), Objective) and isinstance(GRPOObjective(), Objective)
    assert TokenCrossEntropy().pop_metrics() == {}


def test_callbacks_see_the_start_every_step_every_record_and_the_end(tmp_path):
    events = []

    class Record(Callback):
        def on_fit_start(self, trainer):
            events.append(("start", trainer.step))

        def on_step(self, trainer, loss):
            events.append(("step", trainer.step))

        def on_log(self, trainer, record):
            events.append(("log", record["step"]))

        def on_fit_end(self, trainer):
            events.append(("end", trainer.step))

    cfg = TrainConfig(
        max_steps=4,
        global_batch_size=8,
        micro_batch_size=8,
        seq_len=32,
        log_every=2,
        progress=False,
        peak_flops=1e12,
        precision="fp32",
    )
    logged = []
    Trainer(
        cfg,
        tiny_model(),
        None,
        RandomTokens(64, 32, 8),
        tmp_path,
        DistInfo(),
        log=lambda m: None,
        callbacks=[Record(), OnLog(lambda step, record: logged.append(step))],
    ).fit()
    assert events == [
        ("start", 0),
        ("step", 1),
        ("log", 2),
        ("step", 2),
        ("step", 3),
        ("log", 4),
        ("step", 4),
        ("end", 4),
    ]
    assert logged == [2, 4]


def test_default_callbacks_follow_the_config_on_the_main_rank_only(tmp_path):
    cfg = TrainConfig()
    assert [type(c) for c in default_callbacks(cfg, tmp_path, True, print)] == [ProgressBar]
    assert default_callbacks(cfg, tmp_path, False, print) == []
    assert default_callbacks(cfg.model_copy(update={"progress": False}), tmp_path, True, print) == []
