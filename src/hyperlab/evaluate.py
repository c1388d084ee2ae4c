"""`evaluate(cfg)`: rebuild a trained model from the config stored in its checkpoint, test it, predict."""

import csv
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from hyperlab import runs
from hyperlab.config import ConfigError
from hyperlab.train import build_module


def load_checkpoint(path: str) -> dict:
    """weights_only=True: loading a checkpoint never runs code from it."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # truncated file, not a checkpoint, or a pickle that is not plain data
        raise ConfigError(f"ckpt_path={path!r} is not a readable checkpoint: {error}") from error
    if runs.CONFIG_KEY not in checkpoint:
        raise ConfigError(f"ckpt_path={path!r} has no '{runs.CONFIG_KEY}': it was not written by hyperlab's train.py")
    return checkpoint


def write_predictions(path: Path, indices, targets: torch.Tensor, probs: torch.Tensor) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["index", "target", "prediction", *(f"prob_{c}" for c in range(probs.shape[1]))])
        for index, target, p in zip(indices, targets.tolist(), probs.tolist(), strict=True):
            writer.writerow([int(index), target, max(range(len(p)), key=p.__getitem__), *(f"{v:.6f}" for v in p)])


def evaluate(cfg: DictConfig) -> dict:
    output_dir = Path(cfg.paths.output_dir)
    checkpoint = load_checkpoint(cfg.ckpt_path)
    run_cfg = OmegaConf.create(checkpoint[runs.CONFIG_KEY])
    datamodule, module = build_module(run_cfg)
    try:
        module.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as error:
        raise ConfigError(f"ckpt_path={cfg.ckpt_path!r} does not match the model in its own config: {error}") from error
    trainer = instantiate(cfg.trainer, logger=False, callbacks=[], default_root_dir=str(output_dir))
    metrics = dict(trainer.test(module, datamodule=datamodule, verbose=False)[0])
    if cfg.predict:
        probs = torch.cat(trainer.predict(module, datamodule=datamodule))
        targets = datamodule.splits["test"].tensors[1]
        write_predictions(output_dir / "predictions.csv", datamodule.indices["test"], targets, probs)
    metrics.update({"ckpt_path": str(cfg.ckpt_path), **runs.provenance(Path(cfg.paths.root_dir))})
    runs.write_metrics(output_dir, metrics)
    return metrics
