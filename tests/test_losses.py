"""Loss and regularisation knobs: loss values on known batches, class and row weights, penalties, decay groups."""

import math

import pytest
import torch
import torch.nn.functional as F

from hyperlab.builders import build_module
from hyperlab.errors import ConfigError
from hyperlab.training.losses import BinaryCrossEntropy, CrossEntropy, MeanSquaredError, MultiTask

LOGITS = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 3.0], [1.0, 1.0, 1.0]])
TARGET = torch.tensor([0, 2, 2, 1])


def nll(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """-log softmax(logits)[target], per row, by hand."""
    return torch.logsumexp(logits, 1) - logits[torch.arange(len(target)), target]


def test_cross_entropy_on_a_known_batch():
    assert CrossEntropy()(LOGITS, TARGET).item() == pytest.approx(nll(LOGITS, TARGET).mean().item(), rel=1e-6)


def test_label_smoothing_mixes_in_the_uniform_target():
    eps, k = 0.1, 3
    uniform = (torch.logsumexp(LOGITS, 1, keepdim=True) - LOGITS).mean(1)  # -mean_c log p_c per row
    expected = ((1 - eps) * nll(LOGITS, TARGET) + eps * uniform).mean()
    assert CrossEntropy(label_smoothing=eps)(LOGITS, TARGET).item() == pytest.approx(expected.item(), rel=1e-6)
    assert CrossEntropy(label_smoothing=eps)(LOGITS, TARGET) != CrossEntropy()(LOGITS, TARGET)
    assert k == LOGITS.shape[1]


def test_balanced_class_weights_follow_the_train_counts():
    counts = torch.tensor([6, 3, 1])
    loss = CrossEntropy(class_weights="balanced", class_counts=counts)
    assert torch.allclose(loss.class_weight, torch.tensor([10 / 18, 10 / 9, 10 / 3]))  # n / (k * n_c)
    w = loss.class_weight[TARGET]
    expected = (w * nll(LOGITS, TARGET)).sum() / w.sum()
    assert loss(LOGITS, TARGET).item() == pytest.approx(expected.item(), rel=1e-6)
    torch_weighted = F.cross_entropy(LOGITS, TARGET, weight=loss.class_weight)
    assert loss(LOGITS, TARGET).item() == pytest.approx(torch_weighted.item(), rel=1e-6)


def test_listed_class_weights_and_a_wrong_length_is_refused():
    loss = CrossEntropy(class_weights=[1.0, 0.0, 0.0], class_counts=torch.tensor([1, 1, 1]))
    assert loss(LOGITS, TARGET).item() == pytest.approx(nll(LOGITS, TARGET)[0].item(), rel=1e-6)  # class 0 only
    with pytest.raises(ValueError, match=r"loss.class_weights=\[1, 2\] is not allowed.*\(3 classes\)"):
        CrossEntropy(class_weights=[1, 2], class_counts=torch.tensor([1, 1, 1]))


def test_sample_weights_weigh_rows():
    s = torch.tensor([1.0, 0.0, 3.0, 0.0])
    expected = (s * nll(LOGITS, TARGET)).sum() / s.sum()
    assert CrossEntropy()(LOGITS, TARGET, s).item() == pytest.approx(expected.item(), rel=1e-6)
    assert MeanSquaredError()(torch.tensor([[1.0], [3.0]]), torch.tensor([0.0, 0.0]), torch.tensor([1.0, 0.0])) == 1.0


def test_bce_and_mse_on_known_batches():
    logit, target = torch.tensor([[0.0], [2.0], [-1.0]]), torch.tensor([1, 1, 0])
    p = torch.sigmoid(logit.squeeze(1))
    expected = -(torch.log(p[0]) + torch.log(p[1]) + torch.log(1 - p[2])) / 3
    assert BinaryCrossEntropy()(logit, target).item() == pytest.approx(expected.item(), rel=1e-6)
    assert torch.allclose(BinaryCrossEntropy.scores(logit)[:, 1], p) and BinaryCrossEntropy.out_features(2) == 1
    weighted = BinaryCrossEntropy(class_weights=[1.0, 3.0], class_counts=torch.tensor([1, 2]))
    w = torch.tensor([3.0, 3.0, 1.0])
    rows = torch.stack([-torch.log(p[0]), -torch.log(p[1]), -torch.log(1 - p[2])])
    assert weighted(logit, target).item() == pytest.approx(((w * rows).sum() / w.sum()).item(), rel=1e-6)
    assert MeanSquaredError()(torch.tensor([[1.0], [3.0]]), torch.tensor([0.0, 1.0])).item() == 2.5
    with pytest.raises(ValueError, match="loss=bce is for two classes; this dataset has 10"):
        BinaryCrossEntropy.out_features(10)


def test_language_model_cross_entropy_counts_every_position():
    logits, target = torch.randn(2, 5, 7), torch.randint(0, 7, (2, 5))
    expected = F.cross_entropy(logits.reshape(10, 7), target.reshape(10))
    assert CrossEntropy()(logits, target).item() == pytest.approx(expected.item(), rel=1e-6)
    assert CrossEntropy.scores(logits).shape == (2, 7, 5)  # torchmetrics' (B, C, T)


@pytest.mark.parametrize(
    "loss, output",
    [
        (CrossEntropy, torch.tensor([[0.1, 2.0, -1.0], [3.0, 0.0, 3.5]])),
        (CrossEntropy, torch.randn(2, 5, 7)),  # a language model: a class per position
        (BinaryCrossEntropy, torch.tensor([[0.0], [2.0], [-1.0], [1e-3]])),
        (MultiTask, torch.tensor([[0.1, 2.0, -1.0, 9.0, 0.0], [3.0, 0.0, 3.5, 0.0, 9.0]])),  # the last two: aux
    ],
)
def test_the_predicted_class_is_the_argmax_of_the_scores(loss, output):
    """Training accuracy counts `predicted` (no softmax per step): the same classes as the scores' argmax."""
    expected = loss.scores(output).argmax(1)  # (B, k) or (B, k, T)
    assert torch.equal(loss.predicted(output), expected)


@pytest.mark.parametrize("has_predicted", [True, False])
def test_training_accuracy_counts_the_predicted_class_with_or_without_a_losss_predicted(has_predicted):
    """A loss written for a fork may offer only `scores`: training accuracy then takes the argmax of the scores."""
    from torch import nn

    from hyperlab.training.supervised import Supervised

    class ScoresOnly(nn.Module):
        scores = staticmethod(CrossEntropy.scores)

        def forward(self, logits, target):
            return F.cross_entropy(logits, target)

    loss = CrossEntropy() if has_predicted else ScoresOnly()
    module = Supervised(nn.Linear(3, 3), loss, optimizer=torch.optim.SGD)
    output, y = torch.tensor([[2.0, 0.0, 1.0], [0.0, 3.0, 1.0], [0.0, 0.0, 1.0]]), torch.tensor([0, 2, 2])
    module._log_train(torch.tensor(0.5), output, y)
    total, correct = module.train_sums
    assert correct.item() == 2 and total.item() == 1.5 and module.train_count == 3


def test_loss_knobs_reach_the_built_module(make_cfg):
    _, module = build_module(make_cfg("loss.label_smoothing=0.2", "loss.class_weights=balanced"))
    assert module.loss.label_smoothing == 0.2 and module.loss.class_weight.shape == (10,)
    _, module = build_module(make_cfg("data=breast_cancer", "loss=bce"))
    assert isinstance(module.loss, BinaryCrossEntropy) and module.net.layers[-1].out_features == 1
    with pytest.raises(ConfigError, match=r"does not fit data.task=regression; losses for it: loss=mse"):
        build_module(make_cfg("data=diabetes"))


@pytest.mark.parametrize(("l1", "l2"), [(1e-3, 0.0), (0.0, 1e-2), (1e-3, 1e-2)])
def test_l1_l2_penalties_add_to_the_loss(l1, l2, make_cfg):
    datamodule, plain = build_module(make_cfg())
    _, penalised = build_module(make_cfg(f"regularization.l1={l1}", f"regularization.l2={l2}"))
    penalised.load_state_dict(plain.state_dict())
    batch = next(iter(datamodule.train_dataloader()))
    weights = [p for p in plain.net.parameters() if p.ndim == 2]  # the MLP's three weight matrices
    expected = l1 * sum(w.abs().sum() for w in weights) + l2 * sum(w.pow(2).sum() for w in weights)
    grown = penalised.training_step(batch, 0) - plain.training_step(batch, 0)
    assert len(weights) == 3 and grown.item() == pytest.approx(expected.item(), rel=1e-4)


def test_no_decay_bias_norm_puts_biases_and_norms_in_a_group_without_decay(make_cfg):
    _, module = build_module(make_cfg("no_decay_bias_norm=true", "weight_decay=0.1", "model.norm=layer"))
    groups = module.optimizer_factory(module.parameter_groups()).param_groups
    assert [g["weight_decay"] for g in groups] == [0.1, 0.0]
    assert all(p.ndim == 2 for p in groups[0]["params"]) and all(p.ndim == 1 for p in groups[1]["params"])
    # 3 biases of Linear + 2 LayerNorm (weight, bias) pairs
    assert len(groups[1]["params"]) == 3 + 2 * 2
    _, module = build_module(make_cfg("weight_decay=0.1"))
    groups = module.optimizer_factory(module.parameter_groups()).param_groups
    assert len(groups) == 1 and groups[0]["weight_decay"] == 0.1
    assert math.isclose(sum(p.numel() for p in groups[0]["params"]), sum(p.numel() for p in module.parameters()))
