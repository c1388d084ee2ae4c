"""Warm starts and fine-tuning: initialise from another run's checkpoint, freeze the backbone, unfreeze later.

The backbone is every parameter of the network except its output layer (`net.head`): with `scope=backbone`
a network for another class count can start from a trained one.
"""

import torch
from lightning.pytorch.callbacks import BaseFinetuning
from torch import nn

from hyperlab.errors import ConfigError
from hyperlab.training.checkpoints import load_checkpoint


def backbone_modules(net: nn.Module) -> list[nn.Module]:
    """The modules holding parameters directly, minus the output layer (see BaseFinetuning.flatten_modules)."""
    head = set(net.head.modules())
    return [m for m in BaseFinetuning.flatten_modules(net) if m not in head]


def load_initial_weights(net: nn.Module, path: str, scope: str) -> list[str]:
    """Copy the weights of the network in checkpoint `path` into `net` (all, or all but the head); returns the
    names loaded. Shapes must match: a mismatch names every differing tensor."""
    source = {k.removeprefix("net."): v for k, v in load_checkpoint(path)["state_dict"].items() if k.startswith("net.")}
    target = net.state_dict()
    head_tensors = {id(t) for t in net.head.state_dict(keep_vars=True).values()}
    head = {k for k, t in net.state_dict(keep_vars=True).items() if id(t) in head_tensors}
    wanted = [k for k in target if scope == "all" or k not in head]
    missing = [k for k in wanted if k not in source]
    mismatched = [
        f"{k} {tuple(source[k].shape)} -> {tuple(target[k].shape)}"
        for k in wanted
        if k in source and source[k].shape != target[k].shape
    ]
    if missing or mismatched:
        hint = " (finetune.scope=backbone skips the output layer)" if scope == "all" else ""
        raise ConfigError(
            f"finetune.init_from={path!r} does not fit this network{hint}: "
            + "; ".join([*(f"missing {k}" for k in missing[:5]), *mismatched[:5]])
        )
    with torch.no_grad():
        for k in wanted:
            target[k].copy_(source[k])
    return wanted


class FreezeBackbone(BaseFinetuning):
    """Train only the head until `unfreeze_at_epoch`, then the backbone too, at `backbone_lr_scale` times the
    head's LR (Lightning's BaseFinetuning adds the backbone as a new param group then)."""

    def __init__(self, unfreeze_at_epoch: int | None = None, backbone_lr_scale: float = 0.1):
        super().__init__()
        self.unfreeze_at_epoch, self.backbone_lr_scale = unfreeze_at_epoch, backbone_lr_scale

    def freeze_before_training(self, pl_module) -> None:
        self.freeze(backbone_modules(pl_module.net), train_bn=False)

    def finetune_function(self, pl_module, current_epoch: int, optimizer) -> None:
        if current_epoch == self.unfreeze_at_epoch:
            lr = optimizer.param_groups[0]["lr"] * self.backbone_lr_scale
            self.unfreeze_and_add_param_group(backbone_modules(pl_module.net), optimizer, lr=lr, train_bn=True)
