"""Losses (`loss=`): each maps the network's output and the targets to a scalar, and says what the metrics see.

Weighting, for every loss: per-row loss l_i (class weight w_{y_i} included) and optional per-row weight s_i
from the data give `sum_i s_i * l_i / sum_i s_i * w_{y_i}`, which is torch's own weighted mean when s_i = 1.
"""

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hyperlab.errors import choose

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
        self.label_smoothing = label_smoothing
        weight = class_weight_vector(class_weights, class_counts) if class_weights is not None else None
        self.register_buffer("class_weight", weight, persistent=False)  # rebuilt from the config, not stored

    @staticmethod
    def out_features(num_classes: int) -> int:
        return num_classes

    def forward(self, logits: Tensor, target: Tensor, sample_weight: Tensor | None = None) -> Tensor:
        logits, target = logits.reshape(-1, logits.shape[-1]), target.reshape(-1)
        if self.class_weight is None and sample_weight is None:  # torch's mean in the kernel: one op less each way
            return F.cross_entropy(logits, target, label_smoothing=self.label_smoothing)
        per_row = F.cross_entropy(
            logits, target, weight=self.class_weight, label_smoothing=self.label_smoothing, reduction="none"
        )
        row_weight = None if self.class_weight is None else self.class_weight[target]
        return _weighted_mean(per_row, row_weight, sample_weight)

    @staticmethod
    def scores(logits: Tensor) -> Tensor:
        """Class probabilities in torchmetrics' layout: (B, k), or (B, k, T) for sequences."""
        return logits.softmax(-1).movedim(-1, 1)

    @staticmethod
    def predicted(logits: Tensor) -> Tensor:
        """The class with the highest score, (B,) or (B, T): the argmax of the logits, no softmax needed."""
        return logits.argmax(-1)


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

    @staticmethod
    def predicted(logits: Tensor) -> Tensor:
        return (logits.squeeze(-1) > 0).long()  # p > 1 - p; a tie (logit 0) is class 0, as argmax of the scores


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


class MultiTask(nn.Module):
    """Two heads on one shared trunk: the class, and a second label derived from it (`aux=parity`: class mod 2).

    The network gets num_classes + 2 outputs: the first num_classes are the class head, the last 2 the parity
    head (disjoint rows of the output layer, so two linear heads). loss = w0 * CE(class) + w1 * CE(parity);
    the main metrics score the class head, `aux_acc` and the two task losses are logged beside them.
    """

    tasks = ("classification",)
    AUX = {"parity": lambda y: y % 2}

    def __init__(self, weights: Sequence[float] = (1.0, 0.5), aux: str = "parity", label_smoothing: float = 0.0):
        super().__init__()
        choose("loss.aux", aux, self.AUX)
        if len(weights) != 2 or min(weights) < 0:
            raise ValueError(f"loss.weights={list(weights)} must be two numbers >= 0 (class task, aux task)")
        self.weights, self.aux_target = tuple(weights), self.AUX[aux]
        self.cross_entropy = CrossEntropy(label_smoothing=label_smoothing)

    @staticmethod
    def out_features(num_classes: int) -> int:
        return num_classes + 2

    def task_losses(self, output: Tensor, target: Tensor, sample_weight: Tensor | None = None) -> dict[str, Tensor]:
        main, aux = output[..., :-2], output[..., -2:]
        return {
            "loss_main": self.cross_entropy(main, target, sample_weight),
            "loss_aux": self.cross_entropy(aux, self.aux_target(target), sample_weight),
        }

    def forward(self, output: Tensor, target: Tensor, sample_weight: Tensor | None = None) -> Tensor:
        losses = self.task_losses(output, target, sample_weight)
        return self.weights[0] * losses["loss_main"] + self.weights[1] * losses["loss_aux"]

    def task_metrics(self, output: Tensor, target: Tensor) -> dict[str, Tensor]:
        aux_acc = (output[..., -2:].argmax(-1) == self.aux_target(target)).float().mean()
        return {"aux_acc": aux_acc, **self.task_losses(output, target)}

    @staticmethod
    def scores(output: Tensor) -> Tensor:
        return output[..., :-2].softmax(-1)

    @staticmethod
    def predicted(output: Tensor) -> Tensor:
        return output[..., :-2].argmax(-1)


def distillation(student_logits: Tensor, teacher_logits: Tensor, temperature: float) -> Tensor:
    """Knowledge distillation (Hinton et al. 2015): T^2 * KL(softmax(teacher / T) || softmax(student / T)), the
    batch mean; T^2 keeps its gradients on the scale of the hard-label loss as T changes."""
    t = temperature
    student, teacher = F.log_softmax(student_logits / t, -1), F.log_softmax(teacher_logits / t, -1)
    return F.kl_div(student, teacher, log_target=True, reduction="batchmean") * t * t
