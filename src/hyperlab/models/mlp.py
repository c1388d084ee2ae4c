import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from hyperlab.errors import choose
from hyperlab.models import layers

PARAMETRIZATIONS = ("standard", "mup")


class MLP(nn.Module):
    """`depth` hidden blocks of Linear -> norm -> activation -> dropout, then a linear classifier head.

    Any input shape is flattened, so an 8x8 image and a 30-feature table row both work. With
    `parametrization="mup"` the readout is muP's (input x base_width/width, weights x sqrt(width/base_width) at
    init); the per-layer learning rates come from hyperlab.training.parametrization.lr_scales. At width == base_width it
    is the standard network.
    """

    def __init__(
        self,
        in_shape: Sequence[int],
        num_classes: int,
        depth: int = 2,
        width: int = 256,
        activation: str = "relu",
        dropout: float = 0.0,
        norm: str = "none",
        init: str = "default",
        spectral_norm: bool = False,
        parametrization: str = "standard",
        base_width: int = 256,
    ):
        super().__init__()
        mup = choose("model.parametrization", parametrization, PARAMETRIZATIONS) == "mup"
        blocks: list[nn.Module] = [nn.Flatten()]
        features = math.prod(in_shape)
        for _ in range(depth):
            blocks += [nn.Linear(features, width), layers.norm_1d(norm, width), layers.activation(activation)]
            if dropout > 0:
                blocks.append(nn.Dropout(dropout))
            features = width
        width_mult = width / base_width if depth else 1.0  # no hidden layer: nothing grows with width
        if mup:  # the readout sees its input divided by m (hyperlab.training.parametrization)
            blocks.append(layers.Readout(1.0 / width_mult))
        blocks.append(nn.Linear(features, num_classes))
        self.layers = nn.Sequential(*blocks)
        layers.finish(self, init, activation, spectral_norm)
        if mup:  # ... and starts sqrt(m) larger: its effective init variance goes as 1/width^2
            with torch.no_grad():
                self.head.weight.mul_(width_mult**0.5)

    @property
    def head(self) -> nn.Module:
        """The output layer (what fine-tuning keeps trainable or re-initialises)."""
        return self.layers[-1]

    def forward(self, x: Tensor) -> Tensor:  # (B, *in_shape) -> (B, num_classes) logits
        return self.layers(x)
