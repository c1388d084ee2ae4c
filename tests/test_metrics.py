"""Known predictions give known metric values; lr and optimizer options reach the optimizer."""

import pytest
import torch
from torch import nn

from hyperlab.config.cli import compose
from hyperlab.training.supervised import classification_metrics


def test_metrics_on_known_predictions():
    # 3 classes; predictions: 0->0, 0->0, 1->1, 1->2, 2->2, 2->2  (5 of 6 correct)
    target = torch.tensor([0, 0, 1, 1, 2, 2])
    predicted = torch.tensor([0, 0, 1, 2, 2, 2])
    probs = torch.nn.functional.one_hot(predicted, 3).float() * 0.8 + 0.2 / 3
    values = {k: v.item() for k, v in classification_metrics(3, "test/")(probs, target).items()}
    # per class precision: 1, 1, 2/3 ; recall: 1, 1/2, 1 ; f1: 1, 2/3, 4/5
    assert values["test/acc"] == pytest.approx(5 / 6)
    assert values["test/precision"] == pytest.approx((1 + 1 + 2 / 3) / 3)
    assert values["test/recall"] == pytest.approx((1 + 0.5 + 1) / 3)
    assert values["test/f1"] == pytest.approx((1 + 2 / 3 + 0.8) / 3)
    # one-vs-rest AUROC, ties counting 1/2: class 0 -> 1, class 1 -> (4 + 4 * 0.5) / 8, class 2 -> (6 + 2 * 0.5) / 8
    assert values["test/auroc"] == pytest.approx((1 + 6 / 8 + 7 / 8) / 3)


OPTIMIZERS = {
    "sgd": torch.optim.SGD,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "rmsprop": torch.optim.RMSprop,
    "adagrad": torch.optim.Adagrad,
    "adadelta": torch.optim.Adadelta,
}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_optimizer_option_lr_and_weight_decay_reach_the_optimizer(name, tmp_path):
    from hydra.utils import instantiate

    cfg = compose([f"optimizer={name}", "lr=0.0123", "weight_decay=0.045"], tmp_path)
    optimizer = instantiate(cfg.optimizer)(nn.Linear(3, 2).parameters())
    assert type(optimizer) is OPTIMIZERS[name]
    assert optimizer.param_groups[0]["lr"] == 0.0123
    assert optimizer.param_groups[0]["weight_decay"] == 0.045


def test_optimizer_keys_reach_defaults(tmp_path):
    from hydra.utils import instantiate

    params = nn.Linear(3, 2).parameters
    sgd = instantiate(
        compose(["optimizer=sgd", "optimizer.momentum=0.8", "optimizer.nesterov=true"], tmp_path).optimizer
    )(params())
    assert (sgd.defaults["momentum"], sgd.defaults["nesterov"]) == (0.8, True)
    adam = instantiate(
        compose(["optimizer=adam", "optimizer.betas=[0.8,0.95]", "optimizer.eps=1e-6"], tmp_path).optimizer
    )(params())
    assert tuple(adam.defaults["betas"]) == (0.8, 0.95) and adam.defaults["eps"] == 1e-6
