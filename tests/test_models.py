"""Model knobs change the network they claim to: parameter counts, module types, dropout p, init statistics."""

import pytest
import torch
from torch import nn

from hyperlab.models import CNN, MLP


def n_params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize(("depth", "width"), [(0, 1), (1, 32), (2, 256), (3, 64)])
def test_mlp_depth_width_set_parameter_count(depth, width):
    net = MLP((1, 8, 8), num_classes=10, depth=depth, width=width)
    dims = [64] + [width] * depth + [10]
    assert n_params(net) == sum(a * b + b for a, b in zip(dims, dims[1:], strict=False))


@pytest.mark.parametrize(
    ("name", "cls"),
    [("relu", nn.ReLU), ("leaky_relu", nn.LeakyReLU), ("gelu", nn.GELU), ("tanh", nn.Tanh), ("sigmoid", nn.Sigmoid)],
)
def test_activation(name, cls):
    for net in (MLP((64,), 10, depth=2, activation=name), CNN((1, 8, 8), 10, activation=name)):
        acts = [m for m in net.modules() if isinstance(m, (nn.ReLU, nn.LeakyReLU, nn.GELU, nn.Tanh, nn.Sigmoid))]
        assert acts and all(type(m) is cls for m in acts)


def test_dropout_modules_and_p():
    assert not any(isinstance(m, nn.Dropout) for m in MLP((64,), 10, dropout=0.0).modules())
    drops = [m for m in MLP((64,), 10, depth=3, dropout=0.3).modules() if isinstance(m, nn.Dropout)]
    assert len(drops) == 3 and all(m.p == 0.3 for m in drops)


@pytest.mark.parametrize(
    ("norm", "mlp_cls", "cnn_cls"), [("batch", nn.BatchNorm1d, nn.BatchNorm2d), ("layer", nn.LayerNorm, nn.GroupNorm)]
)
def test_norm(norm, mlp_cls, cnn_cls):
    assert sum(isinstance(m, mlp_cls) for m in MLP((64,), 10, depth=2, norm=norm).modules()) == 2
    assert sum(isinstance(m, cnn_cls) for m in CNN((1, 8, 8), 10, channels=[4, 8], norm=norm).modules()) == 2
    plain = MLP((64,), 10, depth=2, norm="none")
    assert not any(isinstance(m, (nn.BatchNorm1d, nn.LayerNorm)) for m in plain.modules())


def first_weight(net: nn.Module) -> torch.Tensor:
    return next(m.weight for m in net.modules() if isinstance(m, nn.Linear)).detach()


def test_init_schemes_set_weight_statistics():
    torch.manual_seed(0)
    fan_in, fan_out = 64, 512
    xavier = first_weight(MLP((fan_in,), 10, depth=1, width=fan_out, init="xavier"))
    assert xavier.std().item() == pytest.approx((2 / (fan_in + fan_out)) ** 0.5, rel=0.05)
    kaiming = first_weight(MLP((fan_in,), 10, depth=1, width=fan_out, init="kaiming"))
    assert kaiming.std().item() == pytest.approx((2 / fan_in) ** 0.5, rel=0.05)
    ortho = first_weight(MLP((fan_in,), 10, depth=1, width=fan_out, init="orthogonal", activation="tanh"))
    assert torch.allclose(ortho.T @ ortho, torch.eye(fan_in), atol=1e-4)  # orthonormal columns, gain 1
    default = first_weight(MLP((fan_in,), 10, depth=1, width=fan_out))
    assert default.abs().max().item() <= fan_in**-0.5  # PyTorch's U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    biases = [m.bias for m in MLP((fan_in,), 10, init="xavier").modules() if isinstance(m, nn.Linear)]
    assert all(torch.count_nonzero(b) == 0 for b in biases)


def test_input_shape_and_classes_come_from_arguments():
    assert MLP((30,), 2)(torch.zeros(5, 30)).shape == (5, 2)
    assert CNN((1, 8, 8), 10)(torch.zeros(5, 1, 8, 8)).shape == (5, 10)
    assert CNN((3, 28, 28), 7, channels=[4, 4, 4])(torch.zeros(2, 3, 28, 28)).shape == (2, 7)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"activation": "swish"}, "model.activation='swish' is not one of: relu, leaky_relu, gelu, tanh, sigmoid"),
        ({"norm": "group"}, "model.norm='group' is not one of: none, batch, layer"),
        ({"init": "he"}, "model.init='he' is not one of: default, xavier, kaiming, orthogonal"),
        ({"dropout": 1.0}, r"model.dropout=1.0 must be in \[0, 1\)"),
    ],
)
def test_bad_layer_choices_name_the_key_and_the_allowed_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MLP((64,), 10, **kwargs)


def test_cnn_rejects_tabular_input():
    with pytest.raises(
        ValueError, match=r"model=cnn needs image data of shape \(C, H, W\); this dataset gives \(30,\)"
    ):
        CNN((30,), 2)
