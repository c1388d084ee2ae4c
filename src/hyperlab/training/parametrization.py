"""The Maximal Update Parametrisation (muP; Yang et al., "Tensor Programs V", 2022): hyperparameters tuned on a
narrow network transfer to a wide one.

Width multiplier m = width / base_width. A parameter's *infinite* dimensions are those that grow with width,
found by comparing its shape with the same network built at `base_width` (the idea of the `mup` package's
`set_base_shapes`). With n of them:
- n = 2, hidden matrices: Adam-type learning rate / m (an adaptive update moves every coordinate by ~lr, and
  fan_in of them add up in the next layer); SGD's unchanged;
- n = 1, the input layer's weights, biases, and the readout's weights: Adam-type unchanged; SGD's x m;
- n = 0, the output bias: unchanged.
Initialisation stays PyTorch's 1/fan_in variance, except the readout, whose input the network multiplies by 1/m
and whose weights start sqrt(m) larger: its effective init variance goes as 1/width^2, so the logits of a wide
network start as small as a narrow one's. At m = 1 all of this is the standard parametrisation. The networks
apply the readout multiplier themselves (`model.parametrization=mup`); this module gives the learning rates.
"""

import functools
from collections.abc import Callable

import torch
from torch import Tensor, nn

SGD_RULE = (torch.optim.SGD,)  # every other optimizer is adaptive and takes the Adam rule


def infinite_dims(net: nn.Module, base: nn.Module) -> dict[str, int]:
    """Per parameter name, how many of its dimensions differ between `net` and the same network at base width."""
    base_shapes = {name: p.shape for name, p in base.named_parameters()}
    return {
        name: sum(a != b for a, b in zip(p.shape, base_shapes[name], strict=True)) for name, p in net.named_parameters()
    }


def lr_scales(net: nn.Module, base: nn.Module, width_mult: float, optimizer_class: type) -> dict[str, float]:
    """The muP learning-rate multiplier of every parameter of `net` for this kind of optimizer."""
    sgd = issubclass(optimizer_class, SGD_RULE)
    scales = {}
    for name, n in infinite_dims(net, base).items():
        if n == 2:
            scales[name] = 1.0 if sgd else 1.0 / width_mult
        elif n == 1:
            scales[name] = width_mult if sgd else 1.0
        else:
            scales[name] = 1.0
    return scales


def activation_scales(
    make_net: Callable[[int], nn.Module],
    widths: list[int],
    x: Tensor,
    y: Tensor,
    make_optimizer: Callable[[nn.Module], torch.optim.Optimizer],
    steps: int = 5,
) -> dict[int, dict[str, float]]:
    """muP's coordinate check: for each width, train `steps` steps on (x, y), then the mean absolute entry of
    every Linear layer's output on x. Under muP these stay flat as width grows; under the standard
    parametrisation with Adam the later layers' grow with width."""
    result = {}
    for width in widths:
        torch.manual_seed(0)
        net = make_net(width)
        optimizer = make_optimizer(net)
        for _ in range(steps):
            optimizer.zero_grad()
            nn.functional.cross_entropy(net(x), y).backward()
            optimizer.step()
        scales: dict[str, float] = {}

        def record(module, inputs, output, name: str, scales=scales) -> None:
            scales[name] = output.abs().mean().item()

        hooks = [
            module.register_forward_hook(functools.partial(record, name=name))
            for name, module in net.named_modules()
            if isinstance(module, nn.Linear)
        ]
        with torch.no_grad():
            net(x)
        for hook in hooks:
            hook.remove()
        result[width] = scales
    return result
