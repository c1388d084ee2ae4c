"""Networks: plain `torch.nn.Module`s with no Lightning, Hydra or config objects, usable from a notebook."""

from hyperlab.models.cnn import CNN
from hyperlab.models.lstm import LSTM
from hyperlab.models.mlp import MLP
from hyperlab.models.resnet import ResNet
from hyperlab.models.transformer import Transformer

__all__ = ["CNN", "LSTM", "MLP", "ResNet", "Transformer"]
