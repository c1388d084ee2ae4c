from collections.abc import Sequence

from torch import Tensor, nn

from hyperlab.models import layers


class CNN(nn.Module):
    """A small conv net for small images: per entry of `channels`, conv3x3 -> norm -> activation -> 2x2 max-pool
    (the pool is skipped once the map is 1 pixel wide), then global average pooling, dropout and a linear head.
    """

    def __init__(
        self,
        in_shape: Sequence[int],
        num_classes: int,
        channels: Sequence[int] = (32, 64),
        activation: str = "relu",
        dropout: float = 0.0,
        norm: str = "batch",
        init: str = "default",
        spectral_norm: bool = False,
        channels_last: bool = False,
    ):
        super().__init__()
        in_channels, height, _ = layers.check_image(in_shape, "cnn")
        blocks: list[nn.Module] = []
        for out_channels in channels:
            blocks += [
                nn.Conv2d(in_channels, out_channels, 3, padding=1),
                layers.norm_2d(norm, out_channels),
                layers.activation(activation),
            ]
            if height > 1:
                blocks.append(nn.MaxPool2d(2))
                height //= 2
            in_channels = out_channels
        self.features = nn.Sequential(*blocks)
        self.head = layers.pooled_head(in_channels, num_classes, dropout)
        layers.finish(self, init, activation, spectral_norm)
        self.memory_format = layers.memory_format(self, channels_last)

    def forward(self, x: Tensor) -> Tensor:  # (B, C, H, W) -> (B, num_classes) logits
        return self.head(self.features(x.contiguous(memory_format=self.memory_format)))
