"""What hyperlab asks of a network and of a data module: the members the rest of the code reads, nothing more.

A new network (models/) or data module (data/) satisfies these and needs no base class; tests/test_contracts.py
checks every bundled one. Members are grouped by the feature that reads them, so a module that does not serve a
feature (a token stream has no in-memory splits) leaves that protocol out and the feature refuses it by name.
"""

from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

from torch import Tensor, nn


@runtime_checkable
class Network(Protocol):
    """A plain `torch.nn.Module` built as `Net(in_shape=..., num_classes=..., **its model.* knobs)`."""

    @property
    def head(self) -> nn.Module:
        """The output layer: fine-tuning re-initialises or keeps training it (finetune.scope, freeze_backbone)."""
        ...

    def forward(self, x: Tensor) -> Tensor:
        """(B, *in_shape) inputs -> (B, num_classes) outputs (logits; per position for a language model)."""
        ...


@runtime_checkable
class RecurrentNetwork(Network, Protocol):
    """A network trained with truncated backpropagation through time (model.tbptt_steps; hyperlab.training)."""

    tbptt_steps: int | None
    """Positions per chunk: one optimizer step per chunk, the state carried across chunks but detached."""

    def step(self, x: Tensor, state=None) -> tuple[Tensor, object]:
        """Outputs and the recurrent state after `x`, starting from `state` (zeros when None)."""
        ...


@runtime_checkable
class PerParameterLearningRates(Network, Protocol):
    """A network some of whose parameters train at a multiple of the optimizer's learning rate, set by its own
    knobs (model=gpt: model.embedding_lr_multiplier); hyperlab.builders.module multiplies them into muP's."""

    lr_multipliers: Mapping[str, float]
    """Parameter name (as `named_parameters` gives it) -> its learning rate / the optimizer's; absent: 1."""


class NetworkBuilder(Protocol):
    """The constructor of a Network, as hyperlab.builders calls it."""

    def __call__(self, in_shape: Sequence[int], num_classes: int, **knobs) -> Network:
        """`in_shape` and `num_classes` come from the data module; `knobs` are the model's config keys."""
        ...


class LanguageModelBuilder(Protocol):
    """A network over token ids (data.task=language_model) also takes the vocabulary's size."""

    def __call__(self, in_shape: Sequence[int], num_classes: int, vocab_size: int, **knobs) -> Network:
        """`vocab_size`: the number of token ids; the data module's `vocab_size`."""
        ...


class WidthScalableBuilder(Protocol):
    """A network muP can scale (model.parametrization=mup): rebuilt at `base_width` to find what grows with width."""

    def __call__(
        self, in_shape: Sequence[int], num_classes: int, width: int, base_width: int, parametrization: str, **knobs
    ) -> Network:
        """`width`: the hidden size; `base_width`: the width the learning rates were tuned at; `parametrization`:
        standard | mup."""
        ...


@runtime_checkable
class DataModule(Protocol):
    """A LightningDataModule (its dataloaders and `setup`) with the facts a network is built from."""

    task: str
    """classification | regression | language_model: what the targets are (the losses and metrics follow it)."""

    num_classes: int
    """The output size: classes, 1 for regression, the vocabulary for a language model."""

    input_shape: tuple[int, ...]
    """One sample's shape: (F,) for a table, (C, H, W) for an image, (T,) token ids for a language model."""

    vocab_size: int | None
    """Token ids' vocabulary size for a language model, else None."""

    batch_size: int
    """Training batch size; the tuner (tune.batch_size) changes it and the throughput figures read it."""

    def setup(self, stage: str | None = None) -> None:
        """Make the splits; idempotent: the builders call it before the network is built (it tells the shapes)."""
        ...

    def example_input(self) -> Tensor:
        """One training sample as a batch of one (B=1): the network's FLOPs are counted on it."""
        ...

    def split_sizes(self) -> dict[str, int]:
        """Samples per split after setup (rows; for a token stream its whole context windows): metrics.json
        records them as data/train_rows, data/val_rows, data/test_rows."""
        ...


@runtime_checkable
class RowSplits(Protocol):
    """Splits of numbered rows, in memory or streamed (an image folder, a converted table): what the classical
    baselines read into arrays (hyperlab.builders.rows) to be scored on the trials' folds and test rows."""

    splits: Mapping[str, "torch.utils.data.Dataset"]  # noqa: F821 (a string: no torch.utils import here)
    """train / val / test, each a map-style Dataset of (features, target) samples."""

    indices: Mapping[str, Sequence[int]]
    """Per split, the rows of the original arrays (or files) it holds."""


@runtime_checkable
class TensorSplits(RowSplits, Protocol):
    """In-memory splits as tensors: what class weights, distillation, the after-fit analyses (quantize, adversarial,
    interpret) and eval.py's predictions.csv read."""

    splits: Mapping[str, "torch.utils.data.TensorDataset"]  # noqa: F821 (a string: no torch.utils import here)
    """train / val / test, each a TensorDataset of (features, targets[, row weights])."""

    indices: Mapping[str, Sequence[int]]
    """Per split, the rows of the original arrays it holds (predictions.csv's `index` column)."""

    @property
    def train_targets(self) -> Tensor:
        """The train split's targets: `loss.class_weights=balanced` counts them."""
        ...
