import math
from collections.abc import Sequence

from torch import Tensor, nn

from hyperlab.models import layers


class MLP(nn.Module):
    """`depth` hidden blocks of Linear -> norm -> activation -> dropout, then a linear classifier head.

    Any input shape is flattened, so an 8x8 image and a 30-feature table row both work.
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
    ):
        super().__init__()
        if depth < 0 or width < 1:
            raise ValueError(f"model.depth={depth} must be >= 0 and model.width={width} >= 1")
        layers.check_dropout(dropout)
        blocks: list[nn.Module] = [nn.Flatten()]
        features = math.prod(in_shape)
        for _ in range(depth):
            blocks += [nn.Linear(features, width), layers.norm_1d(norm, width), layers.activation(activation)]
            if dropout > 0:
                blocks.append(nn.Dropout(dropout))
            features = width
        blocks.append(nn.Linear(features, num_classes))
        self.layers = nn.Sequential(*blocks)
        layers.finish(self, init, activation, spectral_norm)

    @property
    def head(self) -> nn.Module:
        """The output layer (what fine-tuning keeps trainable or re-initialises)."""
        return self.layers[-1]

    def forward(self, x: Tensor) -> Tensor:  # (B, *in_shape) -> (B, num_classes) logits
        return self.layers(x)
