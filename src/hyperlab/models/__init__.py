"""Networks: plain `torch.nn.Module`s with no Lightning, Hydra or config objects, usable from a notebook."""

from hyperlab.models.cnn import CNN
from hyperlab.models.gpt import GPT
from hyperlab.models.lstm import LSTM
from hyperlab.models.mlp import MLP
from hyperlab.models.resnet import ResNet
from hyperlab.models.transformer import Transformer

__all__ = ["CNN", "GPT", "LSTM", "MLP", "ResNet", "Transformer"]
