"""The layer choices the model configs name: activation, normalisation and weight initialisation."""

import math
import warnings

import torch
from torch import Tensor, nn

from hyperlab.errors import choose

ACTIVATIONS = {"relu": nn.ReLU, "leaky_relu": nn.LeakyReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}
NORMS = ("none", "batch", "layer")
INITS = ("default", "xavier", "kaiming", "orthogonal")


def activation(name: str) -> nn.Module:
    return ACTIVATIONS[choose("model.activation", name, ACTIVATIONS)]()


def norm_1d(name: str, features: int) -> nn.Module:
    kind = choose("model.norm", name, NORMS)
    return {"none": nn.Identity, "batch": nn.BatchNorm1d, "layer": nn.LayerNorm}[kind](features)


# The conv nets' layers by the number of spatial dimensions: 1 for a signal (C, L), 2 for an image (C, H, W).
CONV = {1: nn.Conv1d, 2: nn.Conv2d}
MAX_POOL = {1: nn.MaxPool1d, 2: nn.MaxPool2d}
BATCH_NORM = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d}
AVERAGE_POOL = {1: nn.AdaptiveAvgPool1d, 2: nn.AdaptiveAvgPool2d}


# torch pads an even kernel's "same" map with a zero-padded copy of the input and warns at every call; the copy is
# what any asymmetric padding costs, and the warning would repeat in every run of model=fcn / resnet_ts
warnings.filterwarnings("ignore", message="Using padding='same' with even kernel", category=UserWarning)


def same(kernel_size: int, stride: int = 1) -> int | str:
    """The padding that keeps a map's size at stride 1, or divides it by the stride: k // 2 on each side for an odd
    kernel (an int: what static int8 quantisation can prepack), "same" for an even one (torch pads it one more on
    the right)."""
    return kernel_size // 2 if kernel_size % 2 or stride > 1 else "same"


def conv_norm(name: str, channels: int, dims: int = 2) -> nn.Module:
    kind = choose("model.norm", name, NORMS)
    if kind == "layer":  # layer norm over (C, ...) of each sample == group norm with one group
        return nn.GroupNorm(1, channels)
    return nn.Identity() if kind == "none" else BATCH_NORM[dims](channels)


def check_grid(in_shape, model: str) -> tuple[int, int, int]:
    """(channels, first spatial size, spatial dims) of a signal (C, L) or an image (C, H, W); a clear error for
    tabular data."""
    if len(in_shape) not in (2, 3):
        raise ValueError(
            f"model={model} needs image data of shape (C, H, W) or signals (C, L); this dataset gives "
            f"{tuple(in_shape)}. Use data=digits or model=mlp."
        )
    return in_shape[0], in_shape[1], len(in_shape) - 1


def initialize(net: nn.Module, scheme: str, activation_name: str) -> None:
    """Re-initialise every Linear/Conv/LSTM weight (biases to zero); 'default' keeps PyTorch's own init."""
    choose("model.init", scheme, INITS)
    if scheme == "default":
        return
    # kaiming's gain follows the activation; leaky_relu uses PyTorch's default slope 0.01.
    nonlinearity = activation_name if activation_name in ("relu", "leaky_relu", "tanh", "sigmoid") else "relu"
    for module in net.modules():
        if isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.LSTM)):
            for name, parameter in module.named_parameters(recurse=False):
                if name.startswith("bias"):
                    nn.init.zeros_(parameter)
                elif scheme == "xavier":
                    nn.init.xavier_uniform_(parameter)
                elif scheme == "kaiming":
                    a = 0.01 if nonlinearity == "leaky_relu" else 0
                    nn.init.kaiming_normal_(parameter, a=a, nonlinearity=nonlinearity)
                else:
                    nn.init.orthogonal_(parameter, gain=math.sqrt(2.0) if nonlinearity == "relu" else 1.0)


def pooled_head(channels: int, num_classes: int, dropout: float, dims: int = 2) -> nn.Sequential:
    """The conv nets' classifier: global average pooling, dropout, a linear layer."""
    pool = AVERAGE_POOL[dims](1)
    return nn.Sequential(pool, nn.Flatten(), nn.Dropout(dropout), nn.Linear(channels, num_classes))


def finish(net: nn.Module, init: str, activation_name: str, spectral: bool) -> None:
    """The last step of every network's __init__: the weight init, then the optional spectral norm."""
    initialize(net, init, activation_name)
    if spectral:
        spectral_norm(net)


def memory_format(net: nn.Module, channels_last: bool, dims: int = 2) -> torch.memory_format:
    """The layout a conv net computes in. Channels-last (NHWC) lets cuDNN use tensor-core kernels without
    transposing every activation; the kernels are converted here and keep the layout through `.to(device)`."""
    if not channels_last:
        return torch.contiguous_format
    if dims != 2:
        raise ValueError("model.channels_last is a layout of images (N, C, H, W): this dataset gives signals (C, L)")
    net.to(memory_format=torch.channels_last)
    return torch.channels_last


def spectral_norm(net: nn.Module) -> None:
    """Constrain every Linear/Conv weight to spectral norm 1 (torch's parametrization, one power iteration per
    forward): a Lipschitz bound on the network, used for GAN critics and calibrated classifiers."""
    for module in list(net.modules()):
        if isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d)):
            nn.utils.parametrizations.spectral_norm(module)


def sequence_norm(name: str, features: int) -> nn.Module:
    """Normalisation for sequence models: layer norm or none (batch norm across time steps is not used there)."""
    kind = choose("model.norm", name, ("none", "layer"))
    return nn.LayerNorm(features) if kind == "layer" else nn.Identity()


def sequence_shape(in_shape: tuple[int, ...]) -> tuple[int, int]:
    """(steps, features per step) a sequence model reads from a non-token input: an image (C, H, W) row by row
    (H steps of C*W values), a table (F,) one feature at a time (F steps of 1 value)."""
    if len(in_shape) == 3:
        channels, height, width = in_shape
        return height, channels * width
    if len(in_shape) == 2:  # a signal (C, L): L steps of C values
        return in_shape[1], in_shape[0]
    if len(in_shape) == 1:
        return in_shape[0], 1
    raise ValueError(
        f"sequence models read images (C, H, W), signals (C, L), tables (F,) or token ids; got shape {tuple(in_shape)}"
    )


def to_steps(x: Tensor) -> Tensor:
    """(B, C, H, W) -> (B, H, C*W) rows; (B, C, L) -> (B, L, C); (B, F) -> (B, F, 1). See `sequence_shape`."""
    if x.ndim == 4:
        return x.permute(0, 2, 1, 3).flatten(2)
    return x.transpose(1, 2) if x.ndim == 3 else x.unsqueeze(-1)


class Readout(nn.Module):
    """Multiplies the readout layer's input by `multiplier` (1/m under muP)."""

    def __init__(self, multiplier: float):
        super().__init__()
        self.multiplier = multiplier

    def forward(self, x: Tensor) -> Tensor:
        return x * self.multiplier

    def extra_repr(self) -> str:
        return f"multiplier={self.multiplier:g}"
