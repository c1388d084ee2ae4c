from collections.abc import Sequence

from torch import Tensor, nn

from hyperlab.models import layers


def channels_for(size: int, first: int = 32, most: int = 256) -> list[int]:
    """The blocks of a CNN sized for its input: one per halving of the input's side until the map is at most 3 wide
    (at least two), channels doubling from `first` up to `most`. 8x8 digits get (32, 64), as before this existed;
    28x28 (32, 64, 128); 64x64 (32, 64, 128, 256, 256). Two blocks and global pooling leave a 28x28 image a 7x7 map
    of 64 channels to average away (issue 31: 0.875 on a digit folder where an SVC on the pixels reached 0.954)."""
    blocks = 0
    while size > 3 or blocks < 2:
        size, blocks = size // 2, blocks + 1
    return [min(first * 2**i, most) for i in range(blocks)]


class CNN(nn.Module):
    """A small conv net for small images (C, H, W) or signals (C, L): per entry of `channels`, a conv (3 wide, or
    its entry of `kernel_sizes`) -> norm -> activation -> with `pool`, a 2-wide max-pool (skipped once the map is 1
    wide); then global average pooling, dropout and a linear head. Signals get the same layers in 1-D.
    channels None: sized for the input (`channels_for`: depth from the image's side).
    channels (128, 256, 128), kernel_sizes (8, 5, 3), pool=false: the fully convolutional network for time series
    of Wang et al. 2017 (conf/model/fcn.yaml)."""

    def __init__(
        self,
        in_shape: Sequence[int],
        num_classes: int,
        channels: Sequence[int] | None = None,
        activation: str = "relu",
        dropout: float = 0.0,
        norm: str = "batch",
        init: str = "default",
        spectral_norm: bool = False,
        channels_last: bool = False,
        kernel_sizes: Sequence[int] | None = None,
        pool: bool = True,
    ):
        super().__init__()
        in_channels, size, dims = layers.check_grid(in_shape, "cnn")
        channels = channels_for(min(in_shape[1:])) if channels is None else channels
        kernel_sizes = kernel_sizes or [3] * len(channels)
        if len(kernel_sizes) != len(channels):
            raise ValueError(
                f"model.kernel_sizes={list(kernel_sizes)}: one per entry of model.channels={list(channels)}"
            )
        blocks: list[nn.Module] = []
        for out_channels, k in zip(channels, kernel_sizes, strict=True):
            blocks += [
                layers.CONV[dims](in_channels, out_channels, k, padding=layers.same(k)),
                layers.conv_norm(norm, out_channels, dims),
                layers.activation(activation),
            ]
            if pool and size > 1:
                blocks.append(layers.MAX_POOL[dims](2))
                size //= 2
            in_channels = out_channels
        self.features = nn.Sequential(*blocks)
        self.head = layers.pooled_head(in_channels, num_classes, dropout, dims)
        layers.finish(self, init, activation, spectral_norm)
        self.memory_format = layers.memory_format(self, channels_last, dims)

    def forward(self, x: Tensor) -> Tensor:  # (B, C, H, W) or (B, C, L) -> (B, num_classes) logits
        return self.head(self.features(x.contiguous(memory_format=self.memory_format)))
