"""Reading checkpoints safely: weights only, and checked against the model before anything runs."""

import torch
from torch import nn

from hyperlab import runs
from hyperlab.config import ConfigError


def load_checkpoint(path: str, mmap: bool = False) -> dict:
    """weights_only=True: loading a checkpoint never runs code from it. mmap=True reads tensors lazily."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as error:  # truncated file, not a checkpoint, or a pickle that is not plain data
        raise ConfigError(f"ckpt_path={path!r} is not a readable checkpoint: {error}") from error
    if runs.CONFIG_KEY not in checkpoint:
        raise ConfigError(f"ckpt_path={path!r} has no '{runs.CONFIG_KEY}': it was not written by hyperlab's train.py")
    return checkpoint


def check_matches(module: nn.Module, checkpoint: dict, path: str) -> None:
    """The checkpoint's weights must have this model's names and shapes (e.g. not a CNN's for an MLP)."""
    expected = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in checkpoint["state_dict"].items()}
    if expected != found:
        differ = sorted(set(expected.items()) ^ set(found.items()))[:4]
        trained = checkpoint[runs.CONFIG_KEY].get("model", {}).get("_target_")
        raise ConfigError(
            f"ckpt_path={path!r} holds a different model ({trained}); first differences (name, shape): {differ}"
        )
