"""Every option of every group composes and instantiates (recursively), in the fast tier."""

import pytest
import torch
from hydra.utils import get_class, instantiate

from hyperlab.builders import build_module
from hyperlab.builders.trainer import finish_loggers
from tests.conftest import CONF, own_data, trainer_of

GROUPS = ["optimizer", "scheduler", "model", "loss", "augment", "data", "trainer", "callbacks", "logger", "debug"]
GROUPS.append("experiment")
# These need hardware this CPU machine lacks; they are composed and their targets resolved, not instantiated.
NEEDS_ACCELERATOR = {("trainer", "gpu"), ("trainer", "mps"), ("trainer", "ddp"), ("trainer", "fsdp")}
NEEDS_ACCELERATOR |= {("experiment", "gpt_stdlib_gpu")}
# Options that only make sense with another: the data decides the task, the task the loss and the model.
COMPANIONS = {
    ("data", "diabetes"): ["loss=mse", "optimized_metric=val/r2"],
    ("data", "text"): ["model=lstm"],
    ("data", "stdlib"): ["model=gpt", "data.tokenizer=bytes", "model.width=32", "model.depth=1", "model.heads=2"],
    ("model", "gpt"): ["data=stdlib", "data.tokenizer=bytes", "model.width=32", "model.depth=1", "model.heads=2"],
    ("loss", "mse"): ["data=diabetes", "optimized_metric=val/r2"],
    ("experiment", "gpt_stdlib"): ["scheduler.warmup_steps=10"],  # the test builds the schedule for 100 steps
    ("loss", "bce"): ["data=breast_cancer"],
}


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


# Loggers that start a tracking store (mlflow's, and `many`'s four at once) take seconds: the slow tier's
SLOW = {("logger", "many"), ("logger", "mlflow")}
ALL = [
    pytest.param(group, option, id=f"{group}={option}", marks=[pytest.mark.slow] if (group, option) in SLOW else [])
    for group in GROUPS
    for option in options(group)
]


def test_every_group_has_options():
    assert {param.values[0] for param in ALL} == set(GROUPS)
    assert set(options("optimizer")) == {"sgd", "adam", "adamw", "rmsprop", "adagrad", "adadelta"}
    assert set(options("scheduler")) == {
        "none",
        "step",
        "exponential",
        "cosine",
        "onecycle",
        "cyclic",
        "plateau",
        "wsd",
    }
    assert {"default", "cpu", "gpu", "mps", "ddp", "ddp_sim", "fsdp"} <= set(options("trainer"))
    assert {"csv", "tensorboard", "wandb", "mlflow", "many"} <= set(options("logger"))
    assert {"fdr", "overfit", "limit", "profiler", "anomaly"} <= set(options("debug"))


@pytest.mark.parametrize(("group", "option"), ALL)
def test_option_composes_and_instantiates(group, option, make_cfg, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    own = own_data(option, tmp_path) if group == "data" else []
    cfg = make_cfg(f"{group}={option}", *COMPANIONS.get((group, option), []), *own)
    if (group, option) in NEEDS_ACCELERATOR:
        assert get_class(cfg.trainer._target_).__name__ == "Trainer"
        assert cfg.trainer.accelerator in {"gpu", "mps"}
        return
    datamodule, module = build_module(cfg)
    # data tensors (as the device sees them) -> network forward -> optimizer/schedule
    x, y = datamodule.on_after_batch_transfer(next(iter(datamodule.train_dataloader())), 0)
    # (B, classes), (B, 1) for one-output losses, (B, T, vocab) for a language model
    assert module(x).shape == (*y.shape, module.loss.out_features(datamodule.num_classes))
    optimizer = module.optimizer_factory(module.parameters())
    assert isinstance(optimizer, torch.optim.Optimizer)
    if module.scheduler_factory is not None:
        assert module.scheduler_factory(optimizer, 100)
    trainer = trainer_of(cfg)
    assert trainer.accumulate_grad_batches == cfg.trainer.accumulate_grad_batches
    assert trainer.fast_dev_run == cfg.trainer.get("fast_dev_run", False)
    for logger_cfg in (cfg.get("logger") or {}).values():
        assert any(type(lg).__name__ == get_class(logger_cfg._target_).__name__ for lg in trainer.loggers)
    for callback_cfg in (cfg.get("callbacks") or {}).values():
        if callback_cfg is not None:
            assert any(isinstance(cb, get_class(callback_cfg._target_)) for cb in trainer.callbacks)
    finish_loggers(trainer)  # an open W&B run would be reused by the next test's logger in this process


def test_eval_config_composes(make_cfg):
    cfg = make_cfg("ckpt_path=x.ckpt", config_name="eval")
    assert cfg.ckpt_path == "x.ckpt" and cfg.predict is True
    assert instantiate(cfg.trainer, logger=False).max_epochs == cfg.trainer.max_epochs
