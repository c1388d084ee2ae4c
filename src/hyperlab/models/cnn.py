from collections.abc import Sequence

from torch import Tensor, nn

from hyperlab.models import layers


class CNN(nn.Module):
    """A small conv net for small images (C, H, W) or signals (C, L): per entry of `channels`, a 3-wide conv ->
    norm -> activation -> 2-wide max-pool (skipped once the map is 1 wide), then global average pooling, dropout and
    a linear head. Signals get the same layers in 1-D."""

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
        in_channels, size, dims = layers.check_grid(in_shape, "cnn")
        blocks: list[nn.Module] = []
        for out_channels in channels:
            blocks += [
                layers.CONV[dims](in_channels, out_channels, 3, padding=1),
                layers.conv_norm(norm, out_channels, dims),
                layers.activation(activation),
            ]
            if size > 1:
                blocks.append(layers.MAX_POOL[dims](2))
                size //= 2
            in_channels = out_channels
        self.features = nn.Sequential(*blocks)
        self.head = layers.pooled_head(in_channels, num_classes, dropout, dims)
        layers.finish(self, init, activation, spectral_norm)
        self.memory_format = layers.memory_format(self, channels_last, dims)

    def forward(self, x: Tensor) -> Tensor:  # (B, C, H, W) or (B, C, L) -> (B, num_classes) logits
        return self.head(self.features(x.contiguous(memory_format=self.memory_format)))
