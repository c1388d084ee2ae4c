"""Model knobs change the network they claim to: parameter counts, module types, dropout p, init statistics."""

import pytest
import torch
from torch import nn

from hyperlab.models import CNN, LSTM, MLP, ResNet, Transformer
from hyperlab.models.resnet import ResidualBlock


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
    nets = (
        MLP((64,), 10, depth=2, activation=name),
        CNN((1, 8, 8), 10, activation=name),
        ResNet((1, 8, 8), 10, activation=name),
        Transformer((1, 8, 8), 10, activation=name),
    )
    for net in nets:
        acts = [m for m in net.modules() if isinstance(m, (nn.ReLU, nn.LeakyReLU, nn.GELU, nn.Tanh, nn.Sigmoid))]
        assert acts and all(type(m) is cls for m in acts)


def test_dropout_modules_and_p():
    assert not any(isinstance(m, nn.Dropout) for m in MLP((64,), 10, dropout=0.0).modules())
    drops = [m for m in MLP((64,), 10, depth=3, dropout=0.3).modules() if isinstance(m, nn.Dropout)]
    assert len(drops) == 3 and all(m.p == 0.3 for m in drops)
    for net in (ResNet((1, 8, 8), 10, dropout=0.3), LSTM((1, 8, 8), 10, depth=2, dropout=0.3)):
        assert {m.p for m in net.modules() if isinstance(m, nn.Dropout)} == {0.3}
    assert LSTM((1, 8, 8), 10, depth=2, dropout=0.3).lstm.dropout == 0.3  # between the stacked layers too
    assert {m.p for m in Transformer((1, 8, 8), 10, dropout=0.2).modules() if isinstance(m, nn.Dropout)} == {0.2}


@pytest.mark.parametrize(
    ("norm", "mlp_cls", "cnn_cls"), [("batch", nn.BatchNorm1d, nn.BatchNorm2d), ("layer", nn.LayerNorm, nn.GroupNorm)]
)
def test_norm(norm, mlp_cls, cnn_cls):
    assert sum(isinstance(m, mlp_cls) for m in MLP((64,), 10, depth=2, norm=norm).modules()) == 2
    assert sum(isinstance(m, cnn_cls) for m in CNN((1, 8, 8), 10, channels=[4, 8], norm=norm).modules()) == 2
    plain = MLP((64,), 10, depth=2, norm="none")
    assert not any(isinstance(m, (nn.BatchNorm1d, nn.LayerNorm)) for m in plain.modules())
    # resnet: stem + 2 per block + 1 on the projecting shortcut of the second stage
    assert sum(isinstance(m, cnn_cls) for m in ResNet((1, 8, 8), 10, channels=[4, 8], norm=norm).modules()) == 6


def test_sequence_model_norms():
    count = lambda net: sum(isinstance(m, nn.LayerNorm) for m in net.modules())  # noqa: E731
    assert count(Transformer((1, 8, 8), 10, depth=2, norm="layer")) == 2 * 2 + 1  # two per block + final
    assert count(Transformer((1, 8, 8), 10, depth=2, norm="none")) == 0
    assert count(LSTM((1, 8, 8), 10, norm="layer")) == 1 and count(LSTM((1, 8, 8), 10)) == 0
    with pytest.raises(ValueError, match="model.norm='batch' is not one of: none, layer"):
        LSTM((1, 8, 8), 10, norm="batch")


@pytest.mark.parametrize("make", [MLP, CNN, ResNet])
def test_spectral_norm_parametrizes_every_weight(make):
    from torch.nn.utils import parametrize

    net = make((1, 8, 8), 10, spectral_norm=True)
    layers = [m for m in net.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    assert layers and all(parametrize.is_parametrized(m, "weight") for m in layers)
    assert not any(parametrize.is_parametrized(m) for m in make((1, 8, 8), 10).modules())
    linear = next(m for m in layers if isinstance(m, nn.Linear))
    net.train()
    for _ in range(30):  # power iterations run in training forwards
        net(torch.randn(4, 1, 8, 8))
    assert torch.linalg.matrix_norm(linear.weight.detach(), ord=2).item() == pytest.approx(1.0, rel=0.05)


def test_resnet_blocks_and_channels_set_the_residual_stages():
    net = ResNet((1, 8, 8), 10, channels=[8, 16, 32], blocks=2)
    blocks = [m for m in net.modules() if isinstance(m, ResidualBlock)]
    assert len(blocks) == 6 and [b.body[0].out_channels for b in blocks] == [8, 8, 16, 16, 32, 32]
    assert sum(not isinstance(b.shortcut, nn.Identity) for b in blocks) == 2  # a projection per stage change
    assert net.features(torch.zeros(1, 1, 8, 8)).shape == (1, 32, 2, 2)  # 8 -> 4 -> 2


def test_tied_weights_share_one_tensor():
    for make in (LSTM, Transformer):
        tied = make((16,), 30, vocab_size=30, width=32, tie_weights=True)
        assert tied.head.weight is tied.embed.weight
        untied = make((16,), 30, vocab_size=30, width=32)
        assert untied.head.weight is not untied.embed.weight
        assert n_params(untied) - n_params(tied) == 30 * 32
    with pytest.raises(ValueError, match="model.tie_weights and model.tbptt_steps need a language model"):
        LSTM((1, 8, 8), 10, tie_weights=True)


def test_language_models_predict_every_position_and_the_transformer_is_causal():
    ids = torch.randint(0, 30, (2, 16))
    for net in (LSTM((16,), 30, vocab_size=30, width=32), Transformer((16,), 30, vocab_size=30, width=32)):
        net.eval()
        logits = net(ids)
        assert logits.shape == (2, 16, 30)
        changed = ids.clone()
        changed[:, 10:] = (changed[:, 10:] + 1) % 30  # the future must not change the past's predictions
        assert torch.allclose(net(changed)[:, :10], logits[:, :10], atol=1e-5)
        assert not torch.allclose(net(changed)[:, 10:], logits[:, 10:], atol=1e-5)


def test_lstm_step_carries_the_state():
    net = LSTM((16,), 30, vocab_size=30, width=32).eval()
    ids = torch.randint(0, 30, (2, 16))
    first, state = net.step(ids[:, :8])
    second, _ = net.step(ids[:, 8:], state)
    assert torch.allclose(torch.cat([first, second], 1), net(ids), atol=1e-5)  # chunked == whole


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


def test_lstm_init_reaches_the_recurrent_matrices():
    torch.manual_seed(0)
    recurrent = LSTM((1, 8, 8), 10, width=64, init="orthogonal").lstm.weight_hh_l0.detach()  # (4H, H)
    assert torch.allclose(recurrent.T @ recurrent, torch.eye(64), atol=1e-4)
    default = LSTM((1, 8, 8), 10, width=64).lstm.weight_hh_l0.detach()
    assert not torch.allclose(default.T @ default, torch.eye(64), atol=1e-1)


def test_input_shape_and_classes_come_from_arguments():
    assert MLP((30,), 2)(torch.zeros(5, 30)).shape == (5, 2)
    assert CNN((1, 8, 8), 10)(torch.zeros(5, 1, 8, 8)).shape == (5, 10)
    assert CNN((3, 28, 28), 7, channels=[4, 4, 4])(torch.zeros(2, 3, 28, 28)).shape == (2, 7)
    assert ResNet((3, 28, 28), 7)(torch.zeros(2, 3, 28, 28)).shape == (2, 7)
    for make in (Transformer, LSTM):  # images row by row, tables feature by feature
        assert make((1, 8, 8), 10)(torch.zeros(5, 1, 8, 8)).shape == (5, 10)
        assert make((30,), 2)(torch.zeros(5, 30)).shape == (5, 2)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"activation": "swish"}, "model.activation='swish' is not one of: relu, leaky_relu, gelu, tanh, sigmoid"),
        ({"norm": "group"}, "model.norm='group' is not one of: none, batch, layer"),
        ({"init": "he"}, "model.init='he' is not one of: default, xavier, kaiming, orthogonal"),
    ],
)
def test_bad_layer_choices_name_the_key_and_the_allowed_values(kwargs, message):
    # value ranges (model.dropout, depth, width) are config rules: tests/test_cli.py's rule table
    with pytest.raises(ValueError, match=message):
        MLP((64,), 10, **kwargs)


def test_cnn_rejects_tabular_input():
    with pytest.raises(
        ValueError,
        match=r"model=cnn needs image data of shape \(C, H, W\) or signals \(C, L\); this dataset gives \(30,\)",
    ):
        CNN((30,), 2)


def test_signals_of_shape_c_l_reach_every_family_without_an_image_disguise():
    signal = torch.randn(5, 2, 40)  # (B, C, L): 2 channels of 40 steps
    for make in (MLP, CNN, ResNet, Transformer, LSTM):
        assert make((2, 40), 7)(signal).shape == (5, 7), make.__name__
    for make in (CNN, ResNet):  # 1-D layers, not a one-pixel-high image
        net = make((2, 40), 7)
        kinds = {type(m) for m in net.modules()}
        assert nn.Conv1d in kinds and nn.Conv2d not in kinds and nn.BatchNorm1d in kinds
        assert net.features(signal).ndim == 3
    # the CNN halves the signal per stage, sized for its length: 40 -> 20 -> 10 -> 5 -> 2, channels 32 .. 256
    assert CNN((2, 40), 7).features(signal).shape == (5, 256, 2)
    assert CNN((2, 40), 7, channels=[32, 64]).features(signal).shape == (5, 64, 10)
    # a sequence model reads a signal as L steps of C values: permuting time changes its output
    lstm = LSTM((2, 40), 7).eval()
    assert not torch.allclose(lstm(signal), lstm(signal.flip(-1)))


@pytest.mark.parametrize(
    ("side", "channels", "map_side"),
    [(8, [32, 64], 2), (28, [32, 64, 128], 3), (64, [32, 64, 128, 256, 256], 2)],
)
def test_the_default_cnn_is_sized_for_the_image(side, channels, map_side):
    net = CNN((1, side, side), 10)  # model.channels=null: one block per halving until the map is at most 3 wide
    assert [m.out_channels for m in net.modules() if isinstance(m, nn.Conv2d)] == channels
    assert net.features(torch.zeros(2, 1, side, side)).shape == (2, channels[-1], map_side, map_side)


@pytest.mark.parametrize(
    ("side", "channels", "map_side"),
    [(8, [32, 64], 4), (28, [32, 64, 128], 7), (64, [32, 64, 128, 256], 8), (224, [32, 64, 128, 256, 256, 256], 7)],
)
def test_the_default_resnet_is_sized_for_the_image(side, channels, map_side):
    net = ResNet((1, side, side), 10)  # model.channels=null: a stage per halving until the map is at most 8 wide
    blocks = [m for m in net.modules() if isinstance(m, ResidualBlock)]
    assert [b.body[0].out_channels for b in blocks] == channels
    assert net.features(torch.zeros(2, 1, side, side)).shape == (2, channels[-1], map_side, map_side)


def test_channels_last_is_refused_for_signals():
    with pytest.raises(ValueError, match="model.channels_last is a layout of images"):
        CNN((2, 40), 7, channels_last=True)


def conv_layers(net: nn.Module) -> list[tuple[int, int, int]]:
    """(in channels, out channels, width) of every convolution, in order."""
    return [(m.in_channels, m.out_channels, m.kernel_size[0]) for m in net.modules() if isinstance(m, nn.Conv1d)]


def test_the_time_series_fcn_and_resnet_have_the_layers_of_wang_et_al_2017():
    from hyperlab.builders.module import build_network
    from hyperlab.config.cli import compose_with_hydra

    class Signals:  # what build_network reads of a data module: (C, L) = (3, 100) signals, 4 classes
        input_shape, num_classes, vocab_size = (3, 100), 4, None

    loss = nn.CrossEntropyLoss()
    loss.out_features = lambda n: n
    fcn, _ = build_network(compose_with_hydra(["model=fcn"]).model, Signals, loss)
    assert conv_layers(fcn) == [(3, 128, 8), (128, 256, 5), (256, 128, 3)]
    assert not [m for m in fcn.modules() if isinstance(m, nn.MaxPool1d)]  # the map keeps its length to the end
    resnet, _ = build_network(compose_with_hydra(["model=resnet_ts"]).model, Signals, loss)
    assert conv_layers(resnet) == [
        (3, 64, 8), (64, 64, 5), (64, 64, 3), (3, 64, 1),  # block 1 and its projected shortcut; no stem
        (64, 128, 8), (128, 128, 5), (128, 128, 3), (64, 128, 1),
        (128, 128, 8), (128, 128, 5), (128, 128, 3),  # same channels: the identity shortcut
    ]  # fmt: skip
    x = torch.randn(2, 3, 100)
    lengths = []
    handle = resnet.features.register_forward_hook(lambda m, i, o: lengths.append(o.shape[-1]))
    for net in (fcn, resnet):
        assert net(x).shape == (2, 4)
    handle.remove()
    assert lengths == [100]  # no downsampling: the pooled map is as long as the series
    assert isinstance(fcn.head[0], nn.AdaptiveAvgPool1d) and isinstance(resnet.head[0], nn.AdaptiveAvgPool1d)


def test_the_default_cnn_and_resnet_are_unchanged_by_the_time_series_knobs():
    torch.manual_seed(0)
    cnn = CNN((1, 8, 8), 10)
    assert conv_layers(cnn) == [] and [m.kernel_size for m in cnn.modules() if isinstance(m, nn.Conv2d)] == [(3, 3)] * 2
    assert len([m for m in cnn.modules() if isinstance(m, nn.MaxPool2d)]) == 2
    resnet = ResNet((1, 8, 8), 10)
    widths = [m.kernel_size[0] for m in resnet.modules() if isinstance(m, nn.Conv2d)]
    assert widths == [3, 3, 3, 3, 3, 1]  # stem, block 1, block 2 and its strided shortcut
    assert resnet.features(torch.randn(1, 1, 8, 8)).shape == (1, 64, 4, 4)
