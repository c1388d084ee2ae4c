"""muP (model.parametrization=mup): per-layer learning rates, the readout, and the coordinate check."""

import math

import pytest
import torch

from hyperlab.builders import build_module
from hyperlab.errors import ConfigError
from hyperlab.models import GPT, MLP
from hyperlab.train import train
from hyperlab.training.parametrization import activation_scales, lr_scales


def mlp(width: int, parametrization: str = "mup", base_width: int = 64) -> MLP:
    return MLP((64,), 10, width=width, parametrization=parametrization, base_width=base_width)


@pytest.mark.parametrize(
    ("optimizer", "expected"),
    [
        # layers.1 input weights and bias, layers.4 hidden matrix and bias, layers.8 readout weight and bias
        (torch.optim.AdamW, {"layers.1.weight": 1, "layers.1.bias": 1, "layers.4.weight": 1 / 4, "layers.8.weight": 1}),
        (torch.optim.SGD, {"layers.1.weight": 4, "layers.4.bias": 4, "layers.4.weight": 1, "layers.8.weight": 4}),
    ],
)
def test_learning_rate_multipliers_follow_the_dimensions_that_grow(optimizer, expected):
    scales = lr_scales(mlp(256), mlp(64), 256 / 64, optimizer)
    assert {name: scales[name] for name in expected} == expected
    assert scales["layers.8.bias"] == 1  # the output bias does not grow with width


def test_at_the_base_width_mup_is_the_standard_network():
    torch.manual_seed(0)
    standard = mlp(64, "standard")
    torch.manual_seed(0)
    mup = mlp(64, "mup")
    x = torch.randn(8, 64)
    torch.testing.assert_close(mup(x), standard(x))
    assert set(lr_scales(mup, mlp(64), 1.0, torch.optim.AdamW).values()) == {1.0}


def test_the_readout_divides_its_input_by_m_and_starts_sqrt_m_larger():
    torch.manual_seed(0)
    standard = mlp(1024, "standard")
    torch.manual_seed(0)
    mup = mlp(1024, "mup")  # m = 16
    assert mup.layers[-2].multiplier == 1 / 16
    torch.testing.assert_close(mup.head.weight, standard.head.weight * 4)


def test_the_multipliers_reach_the_optimizer_groups(make_cfg):
    cfg = make_cfg("model.width=512", "model.parametrization=mup", "model.base_width=128", "weight_decay=0.01")
    _, module = build_module(cfg)
    optimizer = module.configure_optimizers()
    by_size = {sum(p.numel() for p in g["params"]): (g["lr"], g["weight_decay"]) for g in optimizer.param_groups}
    assert by_size[512 * 512] == pytest.approx((1e-3 / 4, 0.01 * 4))  # lr x weight decay is unchanged
    assert by_size[64 * 512 + 512 + 512 + 512 * 10 + 10] == pytest.approx((1e-3, 0.01))


def test_an_unknown_parametrization_is_refused(make_cfg):
    with pytest.raises(ConfigError, match="model.parametrization='ntk' is not one of: standard, mup"):
        train(make_cfg("model.parametrization=ntk"))


def adamw(net: MLP, parametrization: str, lr: float = 1e-2) -> torch.optim.AdamW:
    if parametrization == "standard":
        return torch.optim.AdamW(net.parameters(), lr=lr)
    scales = lr_scales(net, mlp(64), net.layers[1].out_features / 64, torch.optim.AdamW)
    return torch.optim.AdamW([{"params": [p], "lr": lr * scales[name]} for name, p in net.named_parameters()])


def coordinate_check(parametrization: str) -> dict[int, dict[str, float]]:
    torch.manual_seed(0)
    x, y = torch.randn(256, 64), torch.randint(0, 10, (256,))
    return activation_scales(
        lambda width: mlp(width, parametrization), [64, 256, 1024], x, y, lambda net: adamw(net, parametrization)
    )


def test_coordinate_check_activations_stay_flat_across_width_under_mup_and_grow_under_standard():
    """muP's validation (Yang et al. 2022, Fig. 5): after a few Adam steps, the scale of every layer's output is
    about the same at width 64 and 1024 under muP; under the standard parametrisation the hidden and output
    layers' grow with width."""
    standard, mup = coordinate_check("standard"), coordinate_check("mup")
    # measured 2026-11-30, growth from width 64 to 1024 of the hidden and readout layers: standard 6.12 and 10.10;
    # muP 0.96 and 0.91; muP without the readout multiplier 0.64 and 3.19. The muP band (0.75, 1.3) fails that.
    for layer in (1, 2):  # the Linear layers in order: input, hidden, readout
        assert growth(standard, layer) > 3
        assert 0.75 < growth(mup, layer) < 1.3


def growth(scales: dict[int, dict[str, float]], layer: int) -> float:
    """How much the mean |output| of the layer-th Linear grew from width 64 to width 1024."""
    return list(scales[1024].values())[layer] / list(scales[64].values())[layer]


def gpt(width: int, parametrization: str, **knobs) -> GPT:
    return GPT(
        (32,), 64, vocab_size=64, width=width, depth=2, heads=4, base_width=64, parametrization=parametrization, **knobs
    )


def gpt_logit_scale(parametrization: str, width: int, steps: int = 5) -> float:
    """Mean |logit| of the GPT after `steps` AdamW steps at lr 1e-2 (muP's multipliers under mup)."""
    torch.manual_seed(0)
    net = gpt(width, parametrization)
    scales = lr_scales(net, gpt(64, parametrization), width / 64, torch.optim.AdamW)
    optimizer = torch.optim.AdamW([{"params": [p], "lr": 1e-2 * scales[n]} for n, p in net.named_parameters()])
    ids = torch.randint(0, 64, (16, 33), generator=torch.Generator().manual_seed(1))
    for _ in range(steps):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(net(ids[:, :-1]).flatten(0, 1), ids[:, 1:].flatten()).backward()
        optimizer.step()
    with torch.no_grad():
        return net(ids[:, :-1]).abs().mean().item()


def test_gpt_mup_multipliers_attention_scale_and_coordinate_check():
    scales = lr_scales(gpt(256, "mup"), gpt(64, "mup"), 4.0, torch.optim.AdamW)
    assert scales["blocks.0.attention.qkv.weight"] == scales["blocks.1.mlp.2.weight"] == 1 / 4
    assert scales["token_embedding.weight"] == scales["blocks.0.norm1.weight"] == 1  # tied readout: one matrix
    assert gpt(256, "mup").blocks[0].attention.scale == pytest.approx(math.sqrt(16) / 64)  # 1/d, = 1/sqrt(d) at base
    torch.manual_seed(0)
    standard = gpt(64, "standard")
    torch.manual_seed(0)
    at_base = gpt(64, "mup")
    ids = torch.randint(0, 64, (2, 32))
    torch.testing.assert_close(at_base(ids), standard(ids))
    # mean |logit| after 5 AdamW steps, width 512 over width 64, measured 2026-11-30: standard 2.99, muP 0.78, muP
    # without its readout multiplier 1.90. The bands leave a gap between them: standard > 2.0, muP in (0.55, 1.3).
    assert gpt_logit_scale("standard", 512) / gpt_logit_scale("standard", 64) > 2.0
    assert 0.55 < gpt_logit_scale("mup", 512) / gpt_logit_scale("mup", 64) < 1.3


@pytest.mark.parametrize("parametrization", ["standard", "mup"])
def test_gpt_output_multiplier_scales_the_logits_in_both_parametrisations(parametrization):
    ids = torch.randint(0, 64, (2, 32))
    logits = {}
    for alpha in (1.0, 3.0):
        torch.manual_seed(0)
        net = gpt(256, parametrization, output_multiplier=alpha)
        logits[alpha] = net(ids)
    torch.testing.assert_close(logits[3.0], 3.0 * logits[1.0])  # alpha scales the readout's input (no bias)


def test_gpt_init_std_scales_every_initial_weight_and_mup_divides_the_hidden_ones_by_sqrt_m():
    nets = {}
    for parametrization, width, std in [("standard", 256, 0.02), ("standard", 256, 0.05), ("mup", 256, 0.05)]:
        torch.manual_seed(0)
        nets[parametrization, std] = dict(gpt(width, parametrization, init_std=std).named_parameters())
    standard, wider, mup = nets["standard", 0.02], nets["standard", 0.05], nets["mup", 0.05]
    for name, weight in standard.items():  # the same draws, 2.5x; norms (1) and biases (0) unchanged
        scale = 2.5 if weight.ndim == 2 else 1.0
        torch.testing.assert_close(wider[name], weight * scale)
    # m = 256 / 64 = 4: hidden matrices / 2, the embeddings (and the tied readout) as in the standard network
    torch.testing.assert_close(mup["blocks.1.attention.qkv.weight"], wider["blocks.1.attention.qkv.weight"] / 2)
    torch.testing.assert_close(mup["blocks.0.mlp.2.weight"], wider["blocks.0.mlp.2.weight"] / 2)
    torch.testing.assert_close(mup["token_embedding.weight"], wider["token_embedding.weight"])
    assert wider["blocks.0.mlp.2.weight"].std().item() == pytest.approx(0.05 / math.sqrt(2 * 2), rel=0.05)


@pytest.mark.parametrize(("parametrization", "hidden"), [("standard", 1.0), ("mup", 1 / 4)])
def test_gpt_embedding_lr_multiplier_reaches_the_optimizer_groups(parametrization, hidden, make_cfg, tmp_path):
    from tests.test_tokens import write_corpus

    cfg = make_cfg(
        "data=stdlib",
        f"data.paths=[{write_corpus(tmp_path / 'corpus', files=4)}]",
        "data.tokenizer=bytes",
        "data.context=16",
        f"data.cache_dir={tmp_path / 'cache'}",
        "model=gpt",
        "model.width=128",
        "model.base_width=32",
        "model.heads=2",
        "model.depth=1",
        f"model.parametrization={parametrization}",
        "model.embedding_lr_multiplier=0.125",
        "lr=0.01",
        "weight_decay=0.1",
    )
    _, module = build_module(cfg)
    optimizer = module.configure_optimizers()
    group_of = {id(p): g for g in optimizer.param_groups for p in g["params"]}
    lr_and_decay = {
        name: (group_of[id(p)]["lr"], group_of[id(p)]["weight_decay"]) for name, p in module.net.named_parameters()
    }
    # the tied readout is the token embedding: one parameter, at lr x 0.125 (lr x decay unchanged)
    assert lr_and_decay["token_embedding.weight"] == pytest.approx((0.01 * 0.125, 0.1 / 0.125))
    assert lr_and_decay["position_embedding.weight"] == pytest.approx((0.01 * 0.125, 0.1 / 0.125))
    assert lr_and_decay["blocks.0.mlp.0.weight"] == pytest.approx((0.01 * hidden, 0.1 / hidden))
