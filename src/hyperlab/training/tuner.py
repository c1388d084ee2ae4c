"""`tune.batch_size` / `tune.lr`: Lightning's tuner before fit."""

import lightning as L
from omegaconf import DictConfig


def tune(tune_cfg: DictConfig | None, trainer: L.Trainer, module: L.LightningModule, datamodule) -> dict:
    """The largest batch size that runs (power scaling) and the LR finder's suggestion; both are then used for
    training and written to metrics.json. (Lightning's BatchSizeFinder / LearningRateFinder callbacks would run
    inside fit, after the checkpoint and logger callbacks have started: the tuner runs before them.)"""
    if not tune_cfg or not (tune_cfg.get("batch_size") or tune_cfg.get("lr")):
        return {}
    from lightning.pytorch.tuner import Tuner

    tuner, tuned = Tuner(trainer), {}
    if tune_cfg.batch_size:
        tuned["tune/batch_size"] = tuner.scale_batch_size(module, datamodule=datamodule, mode="power", max_trials=6)
    if tune_cfg.lr:
        finder = tuner.lr_find(module, datamodule=datamodule, num_training=50, update_attr=True, attr_name="lr")
        tuned["tune/lr"] = module.lr = finder.suggestion()
    return tuned
