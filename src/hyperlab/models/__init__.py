"""Networks: plain `torch.nn.Module`s with no Lightning, Hydra or config objects, usable from a notebook."""

from hyperlab.models.cnn import CNN
from hyperlab.models.mlp import MLP

__all__ = ["CNN", "MLP"]
