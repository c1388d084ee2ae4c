"""Which model families can take the data's input, decided before any trial.

A search over `model: choice(mlp, cnn, resnet)` pointed at a table would fail every cnn and resnet trial (their
networks need (C, H, W) images or (C, L) signals). Instead, each family's network is built once for the data
module's `input_shape`, on the meta device (no memory, no init time); the constructor's refusal is the reason a
family is left out. The networks are the only judges: a new family says what it cannot take by refusing it in
its constructor, as the bundled ones do, and needs no list kept here.
"""

from collections.abc import Callable

import torch
from omegaconf import DictConfig, OmegaConf

from hyperlab.builders.module import build_datamodule, build_loss, build_network
from hyperlab.errors import ConfigError


def refusals(options: list, job_config: Callable[[str], DictConfig]) -> tuple[tuple[int, ...], dict[str, str | None]]:
    """The data's input shape, and per family (an option of the `model` group) None if its network takes that
    input, else its constructor's refusal. `job_config(option)`: a trial's composed config with `model=option`."""
    found: dict[str, str | None] = {}
    data = None
    for option in map(str, options):
        cfg = job_config(option)
        if data is None:  # every family trains on the same data: built once (a k-fold search: its first fold)
            folds = cfg.data.get("num_folds") and cfg.data.get("fold") is None
            datamodule = build_datamodule(OmegaConf.merge(cfg.data, {"fold": 0}) if folds else cfg.data, None)
            data = (datamodule, build_loss(cfg.loss, datamodule))
        try:
            with torch.device("meta"):
                build_network(cfg.model, *data)
            found[option] = None
        except ConfigError as error:
            found[option] = str(error)
    return tuple(data[0].input_shape), found
