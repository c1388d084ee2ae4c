"""The Trainer of a config: its callbacks (the configured ones and hyperlab's always-on ones) and loggers."""

from pathlib import Path

import lightning as L
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import WandbLogger
from omegaconf import DictConfig

from hyperlab.config.key_errors import key_errors
from hyperlab.errors import ConfigError
from hyperlab.training.branches import SaveAtSteps
from hyperlab.training.callbacks import CheckMonitors, RunState, StopOnNonFiniteLoss
from hyperlab.training.finetune import FreezeBackbone


def build_trainer(
    trainer: DictConfig, callbacks: DictConfig | None, logger: DictConfig | None, ours: list[L.Callback]
) -> L.Trainer:
    """`ours`: hyperlab's callbacks for this run (`run_callbacks`), after the configured ones."""
    everything = [built(f"callbacks.{name}", node) for name, node in _entries(callbacks)] + ours
    loggers = [start_logger(name, node) for name, node in _entries(logger)]
    # no ModelCheckpoint configured means no checkpoints: Lightning would otherwise add one of its own
    checkpointing = any(isinstance(c, ModelCheckpoint) for c in everything)
    with key_errors("trainer", trainer):
        return instantiate(trainer, callbacks=everything, logger=loggers or False, enable_checkpointing=checkpointing)


def run_callbacks(
    config: dict, optimized_metric: str | None, finetune: DictConfig | None = None, trial: DictConfig | None = None
) -> list[L.Callback]:
    """The callbacks every run has (its config in each checkpoint, the RNG restored on resume, a stop at the first
    non-finite loss, the monitored keys checked), then a stable run's saves, fine-tuning's and a study trial's
    when they are set."""
    callbacks = [RunState(config), StopOnNonFiniteLoss(), CheckMonitors(optimized_metric)]
    scheduler = config.get("scheduler") or {}
    if scheduler.get("save_at"):  # a stable run's saves for cooldown branches (scheduler=wsd)
        checkpoints = Path(config["paths"]["output_dir"]) / "checkpoints"
        callbacks.append(SaveAtSteps(scheduler["save_at"], checkpoints, scheduler.get("budgets")))
    if finetune and finetune.get("freeze_backbone"):
        callbacks.append(FreezeBackbone(finetune.unfreeze_at_epoch, finetune.backbone_lr_scale))
    if trial and trial.get("number") is not None:  # a job of the study sweeper: report to its trial
        from hyperlab.training.trial import ReportToTrial  # optuna loads only for sweeps

        callbacks.append(ReportToTrial(**trial))
    return callbacks


def _entries(group: DictConfig | None) -> list[tuple[str, DictConfig]]:
    """The instantiable entries of a dict-of-objects group (callbacks, logger); `null` entries are dropped."""
    return [(name, node) for name, node in (group or {}).items() if node is not None and "_target_" in node]


def built(prefix: str, node: DictConfig):
    """`instantiate(node)`, a constructor's refusal naming its key under `prefix` (config.key_errors)."""
    with key_errors(prefix, node):
        return instantiate(node)


def start_logger(name: str, node: DictConfig):
    """Loggers open their files or runs lazily, at the first metric; open them now, so that an unwritable
    directory or an unreachable tracking store fails at start, not at the end of an epoch."""
    logger = built(f"logger.{name}", node)
    try:
        _ = logger.experiment
    except Exception as error:
        raise ConfigError(f"logger.{name} cannot start: {type(error).__name__}: {error}") from error
    return logger


def finish_loggers(trainer: L.Trainer) -> None:
    """Lightning leaves the W&B run open; under `-m` the next job in this process would log into it."""
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger) and logger._experiment is not None:
            logger.experiment.finish()
