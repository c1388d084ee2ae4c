from collections.abc import Sequence

from torch import Tensor, nn

from hyperlab.models import layers


class ResidualBlock(nn.Module):
    """conv3 -> norm -> act -> conv3 -> norm, plus the input (1-wide-projected when the shape changes), -> act;
    2-D convolutions for images, 1-D for signals (`dims`)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, norm: str, activation: str, dims: int = 2):
        super().__init__()
        conv = layers.CONV[dims]
        self.body = nn.Sequential(
            conv(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
            layers.conv_norm(norm, out_channels, dims),
            layers.activation(activation),
            conv(out_channels, out_channels, 3, padding=1, bias=False),
            layers.conv_norm(norm, out_channels, dims),
        )
        self.shortcut = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            projection = conv(in_channels, out_channels, 1, stride=stride, bias=False)
            self.shortcut = nn.Sequential(projection, layers.conv_norm(norm, out_channels, dims))
        self.act = layers.activation(activation)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.body(x) + self.shortcut(x))


class ResNet(nn.Module):
    """A small residual network for small images (8x8 digits, 28x28) or signals (C, L): a 3-wide conv stem, then
    one stage per entry of `channels` with `blocks` residual blocks each (every stage after the first halves the
    map while it is wider than 1), global average pooling, dropout and a linear head; 1-D layers for signals."""

    def __init__(
        self,
        in_shape: Sequence[int],
        num_classes: int,
        channels: Sequence[int] = (32, 64),
        blocks: int = 1,
        activation: str = "relu",
        dropout: float = 0.0,
        norm: str = "batch",
        init: str = "kaiming",
        spectral_norm: bool = False,
        channels_last: bool = False,
    ):
        super().__init__()
        if not channels:  # (model.blocks >= 1 is a config rule)
            raise ValueError("model.channels must be non-empty")
        in_channels, width, dims = layers.check_grid(in_shape, "resnet")
        stem = [
            layers.CONV[dims](in_channels, channels[0], 3, padding=1, bias=False),
            layers.conv_norm(norm, channels[0], dims),
        ]
        stages: list[nn.Module] = [*stem, layers.activation(activation)]
        in_channels = channels[0]
        for i, out_channels in enumerate(channels):
            stride = 2 if i > 0 and width > 1 else 1
            width = (width + 1) // 2 if stride == 2 else width
            for b in range(blocks):
                stages.append(ResidualBlock(in_channels, out_channels, stride if b == 0 else 1, norm, activation, dims))
                in_channels = out_channels
        self.features = nn.Sequential(*stages)
        self.head = layers.pooled_head(in_channels, num_classes, dropout, dims)
        layers.finish(self, init, activation, spectral_norm)
        self.memory_format = layers.memory_format(self, channels_last, dims)

    def forward(self, x: Tensor) -> Tensor:  # (B, C, H, W) or (B, C, L) -> (B, num_classes) logits
        return self.head(self.features(x.contiguous(memory_format=self.memory_format)))
