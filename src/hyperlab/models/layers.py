"""The layer choices the model configs name: activation, normalisation and weight initialisation."""

import math

from torch import nn

ACTIVATIONS = {"relu": nn.ReLU, "leaky_relu": nn.LeakyReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}
NORMS = ("none", "batch", "layer")
INITS = ("default", "xavier", "kaiming", "orthogonal")


def _choose(key: str, value: str, allowed) -> str:
    if value not in allowed:
        raise ValueError(f"{key}={value!r} is not one of: {', '.join(allowed)}")
    return value


def activation(name: str) -> nn.Module:
    return ACTIVATIONS[_choose("model.activation", name, ACTIVATIONS)]()


def norm_1d(name: str, features: int) -> nn.Module:
    kind = _choose("model.norm", name, NORMS)
    return {"none": nn.Identity, "batch": nn.BatchNorm1d, "layer": nn.LayerNorm}[kind](features)


def norm_2d(name: str, channels: int) -> nn.Module:
    kind = _choose("model.norm", name, NORMS)
    if kind == "layer":  # layer norm over (C, H, W) of each sample == group norm with one group
        return nn.GroupNorm(1, channels)
    return nn.Identity() if kind == "none" else nn.BatchNorm2d(channels)


def check_dropout(p: float) -> float:
    if not 0.0 <= p < 1.0:
        raise ValueError(f"model.dropout={p} must be in [0, 1)")
    return p


def initialize(net: nn.Module, scheme: str, activation_name: str) -> None:
    """Re-initialise every Linear/Conv weight (biases to zero); 'default' keeps PyTorch's own init."""
    _choose("model.init", scheme, INITS)
    if scheme == "default":
        return
    # kaiming's gain follows the activation; leaky_relu uses PyTorch's default slope 0.01.
    nonlinearity = activation_name if activation_name in ("relu", "leaky_relu", "tanh", "sigmoid") else "relu"
    for module in net.modules():
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            if scheme == "xavier":
                nn.init.xavier_uniform_(module.weight)
            elif scheme == "kaiming":
                nn.init.kaiming_normal_(
                    module.weight, a=0.01 if nonlinearity == "leaky_relu" else 0, nonlinearity=nonlinearity
                )
            else:
                nn.init.orthogonal_(module.weight, gain=math.sqrt(2.0) if nonlinearity == "relu" else 1.0)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
