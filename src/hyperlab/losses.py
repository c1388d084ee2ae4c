"""Losses (`loss=`): each maps the network's output and the targets to a scalar, and says what the metrics see.

Weighting, for every loss: per-row loss l_i (class weight w_{y_i} included) and optional per-row weight s_i
from the data give `sum_i s_i * l_i / sum_i s_i * w_{y_i}`, which is torch's own weighted mean when s_i = 1.
"""

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

CLASS_WEIGHTS = "null, balanced or a list with one weight per class"


def class_weight_vector(spec: str | Sequence[float] | None, class_counts: Tensor) -> Tensor | None:
    """`balanced` gives class c the weight n / (k * n_c) (scikit-learn's definition); a list is taken as is."""
    if spec is None:
        return None
    k = len(class_counts)
    if spec == "balanced":
        return class_counts.sum() / (k * class_counts.clamp(min=1).float())
    if isinstance(spec, str) or len(spec) != k:
        raise ValueError(f"loss.class_weights={spec!r} is not allowed: must be {CLASS_WEIGHTS} ({k} classes)")
    return torch.as_tensor(list(spec), dtype=torch.float32)


def _weighted_mean(per_row: Tensor, row_class_weight: Tensor | None, sample_weight: Tensor | None) -> Tensor:
    if row_class_weight is None and sample_weight is None:
        return per_row.mean()
    norm = torch.ones_like(per_row) if row_class_weight is None else row_class_weight
    if sample_weight is not None:
        per_row, norm = per_row * sample_weight, norm * sample_weight
    return per_row.sum() / norm.sum()


class CrossEntropy(nn.Module):
    """Softmax cross-entropy for k classes, with label smoothing and class weights. Output (B, k) logits, or
    (B, T, k) for a language model (every position is a row)."""

    tasks = ("classification", "language_model")

    def __init__(
        self,
        label_smoothing: float = 0.0,
        class_weights: str | Sequence[float] | None = None,
        class_counts: Tensor | None = None,
    ):
        super().__init__()
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"loss.label_smoothing={label_smoothing} must be in [0, 1)")
        self.label_smoothing = label_smoothing
        weight = class_weight_vector(class_weights, class_counts) if class_weights is not None else None
        self.register_buffer("class_weight", weight, persistent=False)  # rebuilt from the config, not stored

    @staticmethod
    def out_features(num_classes: int) -> int:
        return num_classes

    def forward(self, logits: Tensor, target: Tensor, sample_weight: Tensor | None = None) -> Tensor:
        logits, target = logits.reshape(-1, logits.shape[-1]), target.reshape(-1)
        per_row = F.cross_entropy(
            logits, target, weight=self.class_weight, label_smoothing=self.label_smoothing, reduction="none"
        )
        row_weight = None if self.class_weight is None else self.class_weight[target]
        return _weighted_mean(per_row, row_weight, sample_weight)

    @staticmethod
    def scores(logits: Tensor) -> Tensor:
        """Class probabilities in torchmetrics' layout: (B, k), or (B, k, T) for sequences."""
        return logits.softmax(-1).movedim(-1, 1)


class BinaryCrossEntropy(nn.Module):
    """Sigmoid cross-entropy on one logit for a two-class task; class weights weigh the rows of each class."""

    tasks = ("classification",)

    def __init__(self, class_weights: str | Sequence[float] | None = None, class_counts: Tensor | None = None):
        super().__init__()
        weight = class_weight_vector(class_weights, class_counts) if class_weights is not None else None
        self.register_buffer("class_weight", weight, persistent=False)

    @staticmethod
    def out_features(num_classes: int) -> int:
        if num_classes != 2:
            raise ValueError(f"loss=bce is for two classes; this dataset has {num_classes}: use loss=cross_entropy")
        return 1

    def forward(self, logits: Tensor, target: Tensor, sample_weight: Tensor | None = None) -> Tensor:
        per_row = F.binary_cross_entropy_with_logits(logits.squeeze(-1), target.float(), reduction="none")
        row_weight = None if self.class_weight is None else self.class_weight[target]
        if row_weight is not None:
            per_row = per_row * row_weight
        return _weighted_mean(per_row, row_weight, sample_weight)

    @staticmethod
    def scores(logits: Tensor) -> Tensor:
        p = logits.squeeze(-1).sigmoid()
        return torch.stack([1 - p, p], dim=-1)


class MeanSquaredError(nn.Module):
    """Squared error on one output for a regression target."""

    tasks = ("regression",)

    @staticmethod
    def out_features(num_classes: int) -> int:
        return 1

    def forward(self, output: Tensor, target: Tensor, sample_weight: Tensor | None = None) -> Tensor:
        return _weighted_mean((output.squeeze(-1) - target) ** 2, None, sample_weight)

    @staticmethod
    def scores(output: Tensor) -> Tensor:
        return output.squeeze(-1)
