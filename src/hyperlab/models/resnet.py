from collections.abc import Sequence

from torch import Tensor, nn

from hyperlab.models import layers


def stages_for(size: int, first: int = 32, most: int = 256) -> list[int]:
    """The stages of a ResNet sized for its input: every stage after the first halves the map, until it is at most
    8 wide (at least two stages; the CIFAR ResNets end on an 8x8 map of a 32x32 image), channels doubling from
    `first` up to `most`. 8x8 digits get (32, 64), as before this existed; 28x28 (32, 64, 128): 28 -> 14 -> 7;
    64x64 (32, 64, 128, 256): 64 -> 32 -> 16 -> 8."""
    stages = 1
    while size > 8 or stages < 2:
        size, stages = (size + 1) // 2, stages + 1
    return [min(first * 2**i, most) for i in range(stages)]


class ResidualBlock(nn.Module):
    """conv -> norm -> act per entry of `kernel_sizes` (the last without its act), plus the input (1-wide-projected
    when the shape changes), -> act; 2-D convolutions for images, 1-D for signals (`dims`). (3, 3): the image
    ResNet's block; (8, 5, 3): the time-series ResNet's (Wang et al. 2017)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int,
        norm: str,
        activation: str,
        dims: int = 2,
        kernel_sizes: Sequence[int] = (3, 3),
    ):
        super().__init__()
        conv, body, channels = layers.CONV[dims], [], in_channels
        for i, k in enumerate(kernel_sizes):
            step = stride if i == 0 else 1
            body.append(conv(channels, out_channels, k, stride=step, padding=layers.same(k, step), bias=False))
            body.append(layers.conv_norm(norm, out_channels, dims))
            if i < len(kernel_sizes) - 1:
                body.append(layers.activation(activation))
            channels = out_channels
        self.body = nn.Sequential(*body)
        self.shortcut = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            projection = conv(in_channels, out_channels, 1, stride=stride, bias=False)
            self.shortcut = nn.Sequential(projection, layers.conv_norm(norm, out_channels, dims))
        self.act = layers.activation(activation)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.body(x) + self.shortcut(x))


class ResNet(nn.Module):
    """A small residual network for small images (8x8 digits, 28x28) or signals (C, L): a 3-wide conv stem, then
    one stage per entry of `channels` with `blocks` residual blocks each (with `downsample`, every stage after the
    first halves the map while it is wider than 1), global average pooling, dropout and a linear head; 1-D layers
    for signals. channels None: sized for the input (`stages_for`: depth from the image's side or the signal's
    length). `stem=false`, `downsample=false`, `kernel_sizes=[8, 5, 3]`, channels (64, 128, 128): the
    time-series ResNet of Wang et al. 2017 (conf/model/resnet_ts.yaml)."""

    def __init__(
        self,
        in_shape: Sequence[int],
        num_classes: int,
        channels: Sequence[int] | None = None,
        blocks: int = 1,
        activation: str = "relu",
        dropout: float = 0.0,
        norm: str = "batch",
        init: str = "kaiming",
        spectral_norm: bool = False,
        channels_last: bool = False,
        kernel_sizes: Sequence[int] = (3, 3),
        stem: bool = True,
        downsample: bool = True,
    ):
        super().__init__()
        in_channels, width, dims = layers.check_grid(in_shape, "resnet")
        channels = stages_for(min(in_shape[1:])) if channels is None else channels
        if not channels or not kernel_sizes:  # (model.blocks >= 1 is a config rule)
            raise ValueError("model.channels and model.kernel_sizes must be non-empty")
        stages: list[nn.Module] = []
        if stem:
            stages += [
                layers.CONV[dims](in_channels, channels[0], 3, padding=1, bias=False),
                layers.conv_norm(norm, channels[0], dims),
                layers.activation(activation),
            ]
            in_channels = channels[0]
        for i, out_channels in enumerate(channels):
            stride = 2 if downsample and i > 0 and width > 1 else 1
            width = (width + 1) // 2 if stride == 2 else width
            for b in range(blocks):
                step = stride if b == 0 else 1
                stages.append(ResidualBlock(in_channels, out_channels, step, norm, activation, dims, kernel_sizes))
                in_channels = out_channels
        self.features = nn.Sequential(*stages)
        self.head = layers.pooled_head(in_channels, num_classes, dropout, dims)
        layers.finish(self, init, activation, spectral_norm)
        self.memory_format = layers.memory_format(self, channels_last, dims)

    def forward(self, x: Tensor) -> Tensor:  # (B, C, H, W) or (B, C, L) -> (B, num_classes) logits
        return self.head(self.features(x.contiguous(memory_format=self.memory_format)))
