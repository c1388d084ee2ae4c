"""Every bundled network and data module offers what hyperlab.contracts says, and a missing member is caught."""

import inspect

import pytest
import torch
from hydra.utils import instantiate
from torch import nn

from hyperlab.contracts import (
    DataModule,
    Network,
    PerParameterLearningRates,
    RecurrentNetwork,
    RowSplits,
    TensorSplits,
)
from hyperlab.models import CNN, GPT, LSTM, MLP, ResNet, Transformer
from tests.conftest import CONF, own_data
from tests.test_tokens import write_corpus

# (network, its constructor arguments, a batch it takes)
NETWORKS = [
    (MLP, {"in_shape": (64,), "num_classes": 10}, torch.zeros(2, 64)),
    (CNN, {"in_shape": (1, 8, 8), "num_classes": 10}, torch.zeros(2, 1, 8, 8)),
    (ResNet, {"in_shape": (1, 8, 8), "num_classes": 10}, torch.zeros(2, 1, 8, 8)),
    (LSTM, {"in_shape": (16,), "num_classes": 30, "vocab_size": 30}, torch.zeros(2, 16, dtype=torch.long)),
    (Transformer, {"in_shape": (16,), "num_classes": 30, "vocab_size": 30}, torch.zeros(2, 16, dtype=torch.long)),
    (GPT, {"in_shape": (16,), "num_classes": 30, "vocab_size": 30, "width": 32, "heads": 2, "depth": 1}, None),
]
LANGUAGE_MODELS = {LSTM, Transformer, GPT}  # take vocab_size (contracts.LanguageModelBuilder)
WIDTH_SCALABLE = {MLP, GPT}  # take width, base_width, parametrization (contracts.WidthScalableBuilder)


def missing(obj, protocol) -> list[str]:
    """The protocol's members `obj` lacks (runtime_checkable's isinstance only says yes or no)."""
    members = {n for n in dir(protocol) if not n.startswith("_")} | set(getattr(protocol, "__annotations__", {}))
    return sorted(name for name in members if not hasattr(obj, name))


def test_every_model_package_network_is_checked():
    import hyperlab.models

    assert {cls for cls, _, _ in NETWORKS} == {getattr(hyperlab.models, name) for name in hyperlab.models.__all__}


@pytest.mark.parametrize(("cls", "kwargs", "batch"), NETWORKS, ids=[c.__name__ for c, _, _ in NETWORKS])
def test_every_network_meets_the_network_contract(cls, kwargs, batch):
    net = cls(**kwargs)
    assert isinstance(net, Network), missing(net, Network)
    linears = [m for m in net.head.modules() if isinstance(m, nn.Linear)]  # the output layer sits in the head
    assert linears and linears[-1].out_features == kwargs["num_classes"]
    assert {id(p) for p in net.head.parameters()} <= {id(p) for p in net.parameters()}
    batch = torch.zeros(2, 16, dtype=torch.long) if batch is None else batch
    assert net(batch).shape[0] == 2 and net(batch).shape[-1] == kwargs["num_classes"]
    parameters = inspect.signature(cls).parameters
    assert {"in_shape", "num_classes"} <= set(parameters)
    assert ("vocab_size" in parameters) == (cls in LANGUAGE_MODELS)
    assert {"width", "base_width", "parametrization"} <= set(parameters) or cls not in WIDTH_SCALABLE


def test_the_recurrent_network_offers_truncated_bptt_members():
    net = LSTM((16,), 30, vocab_size=30, tbptt_steps=4)
    assert isinstance(net, RecurrentNetwork), missing(net, RecurrentNetwork)
    logits, state = net.step(torch.zeros(2, 4, dtype=torch.long))
    assert logits.shape == (2, 4, 30) and net.tbptt_steps == 4


def test_the_per_parameter_learning_rates_name_parameters_of_the_network():
    net = GPT((16,), 30, vocab_size=30, width=32, heads=2, depth=1, embedding_lr_multiplier=0.5)
    assert isinstance(net, PerParameterLearningRates), missing(net, PerParameterLearningRates)
    assert net.lr_multipliers == {"token_embedding.weight": 0.5, "position_embedding.weight": 0.5}
    assert set(net.lr_multipliers) <= dict(net.named_parameters()).keys()


def test_a_network_without_a_head_breaks_the_contract():
    class Headless(nn.Module):  # what a forker's first network often looks like: an nn.Sequential, no `head`
        def __init__(self, in_shape, num_classes):
            super().__init__()
            self.layers = nn.Sequential(nn.Flatten(), nn.Linear(64, num_classes))

        def forward(self, x):
            return self.layers(x)

    net = Headless((64,), 10)
    assert not isinstance(net, Network)
    assert missing(net, Network) == ["head"]


STREAMED = {"stdlib", "images"}  # their own tests below and in test_images.py
ARRAY_DATA = sorted(p.stem for p in (CONF / "data").glob("*.yaml") if p.stem not in STREAMED)


def test_every_data_config_is_checked():
    assert {p.stem for p in (CONF / "data").glob("*.yaml")} == set(ARRAY_DATA) | STREAMED
    assert (
        "test_the_image_module_meets_the_data_contract_and_refuses_in_memory_options"
        in (CONF.parent / "tests" / "test_images.py").read_text()
    )


@pytest.mark.parametrize("name", ARRAY_DATA)
def test_every_in_memory_data_config_meets_the_data_contracts(name, make_cfg, tmp_path):
    datamodule = instantiate(make_cfg(f"data={name}", *own_data(name, tmp_path)).data)
    datamodule.setup("fit")
    for protocol in (DataModule, RowSplits, TensorSplits):
        assert isinstance(datamodule, protocol), missing(datamodule, protocol)
    assert datamodule.example_input().shape == (1, *datamodule.input_shape)
    assert set(datamodule.splits) == set(datamodule.indices) == {"train", "val", "test"}
    assert len(datamodule.train_targets) == len(datamodule.indices["train"])
    assert datamodule.split_sizes() == {name: len(rows) for name, rows in datamodule.indices.items()}


def test_the_token_data_module_meets_the_data_contract(tmp_path, make_cfg):
    corpus = write_corpus(tmp_path / "corpus")
    cfg = make_cfg("data=stdlib", f"data.paths=[{corpus}]", "data.tokenizer=bytes", f"data.cache_dir={tmp_path}/c")
    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    assert isinstance(datamodule, DataModule), missing(datamodule, DataModule)
    assert datamodule.task == "language_model" and datamodule.vocab_size == 256
    assert datamodule.example_input().shape == (1, *datamodule.input_shape)
    assert not isinstance(datamodule, RowSplits)  # a token stream: the in-memory analyses and the baselines refuse it
    tokens = {split: counts["tokens"] for split, counts in datamodule.manifest["splits"].items()}
    assert datamodule.split_sizes() == {split: (n - 1) // datamodule.context for split, n in tokens.items()}


def test_a_data_module_without_its_facts_breaks_the_contract():
    class Bare:  # a LightningDataModule someone wrote without the facts a network is built from
        batch_size = 32

        def setup(self, stage=None): ...

        def example_input(self): ...

        def split_sizes(self): ...

    assert not isinstance(Bare(), DataModule)
    assert missing(Bare(), DataModule) == ["input_shape", "num_classes", "task", "vocab_size"]
