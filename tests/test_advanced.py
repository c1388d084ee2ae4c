"""Advanced techniques, each switched on from the config: fine-tuning, pruning, quantisation, distillation,
multi-task, adversarial training, attributions, tuner, weight averaging, gradient/weight logging, ensembles."""

import copy
import re
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch

from hyperlab import runs
from hyperlab.analysis.compression import PruningSchedule
from hyperlab.builders import build_module
from hyperlab.config.cli import compose
from hyperlab.errors import ConfigError
from hyperlab.train import train
from tests.conftest import trainer_of

QUICK = ["callbacks.early_stopping=null", "callbacks.rich_progress_bar=null"]


@pytest.fixture(scope="module")
def source_runs(tmp_path_factory):
    """Two finished 2-epoch runs: the default MLP on digits, and one on 4-class synthetic data."""
    made = {}
    for name, overrides in {"digits": [], "synthetic": ["data=synthetic"]}.items():
        out = tmp_path_factory.mktemp(name)
        train(compose(["trainer.max_epochs=2", *QUICK, *overrides], out))
        made[name] = out
    return made


def last_ckpt(run: Path) -> str:
    return str(run / "checkpoints" / "last.ckpt")


def fit(cfg, callbacks=()):
    L.seed_everything(cfg.seed)
    datamodule, module = build_module(cfg)
    trainer = trainer_of(cfg)
    trainer.callbacks.extend(callbacks)
    trainer.fit(module, datamodule=datamodule)
    return trainer, module, datamodule


# --- warm start, transfer, freezing --------------------------------------------------------------------------------


def test_warm_start_loads_every_weight_of_the_source(source_runs, make_cfg):
    source = torch.load(last_ckpt(source_runs["digits"]), weights_only=True)["state_dict"]
    _, module = build_module(make_cfg(f"finetune.init_from={last_ckpt(source_runs['digits'])}"))
    for name, tensor in module.net.state_dict().items():
        assert torch.equal(tensor, source[f"net.{name}"]), name
    _, cold = build_module(make_cfg())
    assert not torch.equal(cold.net.state_dict()["layers.1.weight"], source["net.layers.1.weight"])


def test_transfer_to_another_class_count_loads_the_backbone_only(source_runs, make_cfg):
    path = last_ckpt(source_runs["synthetic"])
    other = ["data=synthetic", "data.load.n_classes=3"]
    with pytest.raises(
        ConfigError,
        match=re.escape("(finetune.scope=backbone skips the output layer): layers.7.weight (4, 256) -> (3, 256)"),
    ):
        build_module(make_cfg(*other, f"finetune.init_from={path}"))
    _, module = build_module(make_cfg(*other, f"finetune.init_from={path}", "finetune.scope=backbone"))
    source = torch.load(path, weights_only=True)["state_dict"]
    assert torch.equal(module.net.layers[1].weight, source["net.layers.1.weight"])
    assert module.net.head.weight.shape == (3, 256)  # the new head keeps its fresh init
    with pytest.raises(ConfigError, match="finetune.init_from='nope.ckpt': no such file"):
        from hyperlab.config.rules import check

        check(make_cfg("finetune.init_from=nope.ckpt"))


def test_frozen_backbone_is_unchanged_and_unfreezes_at_its_epoch_with_a_lower_lr(make_cfg):
    frozen_cfg = make_cfg("finetune.freeze_backbone=true", "trainer.max_epochs=1", *QUICK)
    datamodule, module = build_module(frozen_cfg)
    initial = copy.deepcopy(module.net.state_dict())
    trainer_of(frozen_cfg).fit(module, datamodule=datamodule)
    after = module.net.state_dict()
    assert all(torch.equal(initial[k], after[k]) for k in ("layers.1.weight", "layers.4.bias"))
    assert not torch.equal(initial["layers.7.weight"], after["layers.7.weight"])  # the head trained
    trainer, module, _ = fit(
        make_cfg("finetune.freeze_backbone=true", "finetune.unfreeze_at_epoch=1", "trainer.max_epochs=2", *QUICK)
    )
    groups = trainer.optimizers[0].param_groups
    assert len(groups) == 2 and groups[1]["lr"] == pytest.approx(0.1 * groups[0]["lr"])
    assert all(p.requires_grad for p in module.net.parameters())


# --- pruning and quantisation ---------------------------------------------------------------------------------------


def test_pruning_schedule_reaches_its_final_sparsity_evenly():
    schedule = PruningSchedule(final=0.8, start_epoch=1, end_epoch=4)
    left = 1.0
    for epoch in range(7):
        left *= 1 - schedule(epoch)
        assert 1 - left == pytest.approx(schedule.target(epoch))
    assert [round(schedule.target(e), 3) for e in range(6)] == [0.0, 0.2, 0.4, 0.6, 0.8, 0.8]


def test_pruning_callback_leaves_the_configured_fraction_of_zeros(make_cfg):
    cfg = make_cfg(
        "callbacks=[default,pruning]",
        "callbacks.pruning.amount.end_epoch=2",
        "callbacks.model_checkpoint=null",
        "trainer.max_epochs=3",
        *QUICK,
    )
    train(cfg)
    metrics = runs.read_metrics(Path(cfg.paths.output_dir))
    assert metrics["model/sparsity"] == pytest.approx(0.8, abs=1e-4)


@pytest.mark.parametrize(("mode", "model"), [("dynamic", "mlp"), ("static", "mlp"), ("static", "cnn")])
def test_int8_copy_is_smaller_and_about_as_accurate(mode, model, make_cfg):
    cfg = make_cfg(f"quantize={mode}", f"model={model}", *QUICK)
    train(cfg)
    out = Path(cfg.paths.output_dir)
    metrics = runs.read_metrics(out)
    assert metrics["quant/size_mb"] < 0.5 * metrics["model/size_mb"]  # int8 weights: about a quarter
    assert abs(metrics["quant/test_acc"] - metrics["test/acc"]) <= 0.03
    state = torch.load(out / "model_int8.pt", weights_only=True)
    assert any("_packed_params" in k for k in state)
    if mode == "static":  # activations quantised too: the graph holds scales and zero points per layer
        assert any(k.endswith("scale_0") or "_scale_" in k for k in state)


def test_static_quantisation_is_refused_before_training_where_the_model_cannot_take_it(make_cfg):
    with pytest.raises(ConfigError, match="quantize=static: LSTM cannot be prepared for static quantisation"):
        build_module(make_cfg("quantize=static", "model=lstm"))


# --- distillation, multi-task -------------------------------------------------------------------------------------


def test_distillation_adds_the_kd_term_and_it_changes_with_temperature(source_runs, make_cfg):
    from hyperlab.training.losses import distillation

    teacher = last_ckpt(source_runs["digits"])
    datamodule, module = build_module(make_cfg(f"distill.teacher={teacher}", "distill.alpha=0.3"))
    x, y = next(iter(datamodule.train_dataloader()))
    output = module.net(x)
    hard = module.loss(output, y)
    soft = distillation(output, module.teacher(x), 4.0)
    assert module.training_step((x, y), 0).item() == pytest.approx((0.7 * hard + 0.3 * soft).item(), rel=1e-5)
    assert distillation(output, module.teacher(x), 1.0).item() != pytest.approx(soft.item(), rel=1e-2)
    assert not any(k.startswith("teacher") for k in module.state_dict())  # never saved with the student
    assert all(not p.requires_grad for p in module.teacher.parameters())


def test_multitask_heads_each_have_their_loss_weight_and_metric(make_cfg):
    from hyperlab.training.losses import CrossEntropy

    datamodule, module = build_module(make_cfg("loss=multitask", "loss.weights=[1.0,0.25]"))
    assert module.net.head.out_features == 12  # 10 classes + 2 parity logits on one trunk
    x, y = next(iter(datamodule.train_dataloader()))
    output = module.net(x)
    ce = CrossEntropy()
    expected = ce(output[:, :10], y) + 0.25 * ce(output[:, 10:], y % 2)
    assert module.loss(output, y).item() == pytest.approx(expected.item(), rel=1e-6)
    cfg = make_cfg("loss=multitask", *QUICK)
    train(cfg)
    metrics = runs.read_metrics(Path(cfg.paths.output_dir))
    assert metrics["test/aux_acc"] > 0.7 and metrics["test/acc"] > 0.7  # both heads learned
    assert {"val/loss_main", "val/loss_aux"} <= set(metrics)


# --- adversarial examples, attributions ---------------------------------------------------------------------------


def test_attacks_stay_within_epsilon_and_raise_the_loss(source_runs):
    from hyperlab.analysis.robust import perturb
    from hyperlab.builders import load_module

    datamodule, module = load_module(last_ckpt(source_runs["digits"]))
    x, y = datamodule.splits["test"].tensors[:2]
    net, loss = module.net.eval(), module.loss
    clean = loss(net(x), y).item()
    torch.manual_seed(0)
    fgsm, pgd = (perturb(net, loss, x, y, attack, 0.3, steps=10) for attack in ("fgsm", "pgd"))
    for adv in (fgsm, pgd):
        assert (adv - x).abs().max().item() <= 0.3 + 1e-5
    assert clean < loss(net(fgsm), y).item() < loss(net(pgd), y).item()


def test_adversarial_accuracy_is_reported_below_clean_accuracy(make_cfg):
    cfg = make_cfg("adversarial.attack=pgd", "adversarial.train=false", *QUICK)
    train(cfg)
    metrics = runs.read_metrics(Path(cfg.paths.output_dir))
    assert metrics["test/adv_acc"] < metrics["test/acc"] - 0.1


@pytest.mark.slow
def test_adversarial_training_raises_adversarial_accuracy(make_cfg):
    def adv_acc(*overrides):
        cfg = make_cfg("adversarial.attack=pgd", "adversarial.epsilon=0.5", "trainer.max_epochs=10", *QUICK, *overrides)
        train(cfg)
        return runs.read_metrics(Path(cfg.paths.output_dir))["test/adv_acc"]

    assert adv_acc("adversarial.train=true") > adv_acc("adversarial.train=false") + 0.1


def test_attributions_are_written_and_complete(make_cfg):
    from hyperlab.analysis.interpret import integrated_gradients

    cfg = make_cfg("interpret.samples=4", *QUICK)
    train(cfg)
    out = Path(cfg.paths.output_dir)
    attributions = np.load(out / "attributions.npy")
    assert attributions.shape == (4, 1, 8, 8) and (out / "attributions.png").stat().st_size > 1000
    assert 0 < runs.read_metrics(out)["interpret/features_90"] <= 1
    # completeness: attributions sum to logit(x) - logit(baseline) for the target class
    datamodule, module = build_module(cfg)
    x, y = datamodule.splits["test"].tensors[0][:3], datamodule.splits["test"].tensors[1][:3]
    ig = integrated_gradients(module.net, x, y, steps=200)
    with torch.no_grad():
        gap = module.net(x)[range(3), y] - module.net(torch.zeros_like(x))[range(3), y]
    assert torch.allclose(ig.flatten(1).sum(1), gap, atol=1e-2 * gap.abs().max().item())


def test_options_that_need_class_labels_are_refused_for_other_tasks(make_cfg):
    with pytest.raises(ConfigError, match="adversarial.attack=pgd needs a classification task; data.task=regression"):
        build_module(make_cfg("data=diabetes", "loss=mse", "adversarial.attack=pgd"))
    with pytest.raises(ConfigError, match="quantize=dynamic scores the int8 copy's accuracy: not for data.task=regr"):
        build_module(make_cfg("data=diabetes", "loss=mse", "quantize=dynamic"))
    with pytest.raises(ConfigError, match="interpret.samples=2 needs a classification task; data.task=language_model"):
        build_module(make_cfg("data=text", "model=lstm", "interpret.samples=2"))


# --- tuner, weight averaging, logging ---------------------------------------------------------------------------------


@pytest.mark.slow  # two tuner searches: ~4 s
def test_tuner_chooses_batch_size_and_lr_and_they_are_used(make_cfg):
    cfg = make_cfg("tune.batch_size=true", "tune.lr=true", "trainer.max_epochs=1", *QUICK)
    metrics = {}
    datamodule, module = build_module(cfg)
    trainer = trainer_of(cfg)
    from hyperlab.training.tuner import tune

    metrics = tune(cfg.tune, trainer, module, datamodule)
    assert metrics["tune/batch_size"] == datamodule.batch_size and metrics["tune/batch_size"] >= 64
    trainer.fit(module, datamodule=datamodule)
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(metrics["tune/lr"])
    assert metrics["tune/lr"] != cfg.lr


class Snapshots(L.Callback):
    def __init__(self, when: str):
        self.when, self.taken = when, []

    def on_train_batch_end(self, trainer, pl_module, *args):
        if self.when == "step":
            self.taken.append({k: v.detach().clone() for k, v in pl_module.net.state_dict().items()})

    def on_train_epoch_end(self, trainer, pl_module):
        if self.when == "epoch":
            self.taken.append({k: v.detach().clone() for k, v in pl_module.net.state_dict().items()})


def test_swa_ends_with_the_average_of_the_epoch_weights(make_cfg):
    snapshots = Snapshots("epoch")
    cfg = make_cfg("callbacks=[default,swa]", "callbacks.swa.swa_epoch_start=2", "trainer.max_epochs=4", *QUICK)
    _, module, _ = fit(cfg, [snapshots])
    # Lightning averages the weights each epoch starts with, from epoch swa_epoch_start (1-based) to the last:
    # here the weights entering epochs 2, 3, 4 (1-based), i.e. those after the first three epochs
    averaged = {k: torch.stack([s[k] for s in snapshots.taken[:3]]).mean(0) for k in snapshots.taken[0]}
    for k, v in module.net.state_dict().items():
        torch.testing.assert_close(v, averaged[k], atol=1e-6, rtol=1e-5)


def test_ema_ends_with_the_moving_average_of_the_step_weights(make_cfg):
    snapshots = Snapshots("step")
    cfg = make_cfg("callbacks=[default,ema]", "callbacks.ema.decay=0.9", "trainer.max_epochs=1", *QUICK)
    _, module, _ = fit(cfg, [snapshots])
    ema = dict(snapshots.taken[0])
    for s in snapshots.taken[1:]:
        ema = {k: 0.9 * ema[k] + 0.1 * s[k] for k in ema}
    for k, v in module.net.state_dict().items():
        torch.testing.assert_close(v, ema[k], atol=1e-5, rtol=1e-4)
    assert not torch.allclose(module.net.state_dict()["layers.1.weight"], snapshots.taken[-1]["layers.1.weight"])


def test_gradient_norms_are_logged_every_step(make_cfg):
    import csv

    cfg = make_cfg("callbacks=[default,grad_norm]", "trainer.log_every_n_steps=1", "trainer.max_epochs=1", *QUICK)
    train(cfg)
    with open(Path(cfg.paths.output_dir) / "csv" / "metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r.get("grad/norm_total")]
    assert len(rows) == 20 and all(float(r["grad/norm_total"]) > 0 for r in rows)
    assert float(rows[0]["grad/norm/layers.1.weight"]) > 0


def test_weight_histograms_reach_tensorboard_and_need_it(make_cfg):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = make_cfg("callbacks=[default,weight_histograms]", "logger=tensorboard", "trainer.max_epochs=2", *QUICK)
    train(cfg)
    event_dir = next(Path(cfg.paths.output_dir).rglob("events.out.tfevents.*")).parent
    accumulator = EventAccumulator(str(event_dir), size_guidance={"histograms": 0})
    accumulator.Reload()
    assert "weights/layers.1.weight" in accumulator.Tags()["histograms"]
    assert len(accumulator.Histograms("weights/layers.1.weight")) == 2  # one per epoch
    with pytest.raises(ConfigError, match="callbacks.weight_histograms writes to TensorBoard"):
        train(make_cfg("callbacks=[default,weight_histograms]", "logger=csv", *QUICK))


# --- ensembles --------------------------------------------------------------------------------------------------------


def test_a_sweeps_top_k_jobs_evaluate_as_an_ensemble(source_runs, make_cfg, tmp_path):
    from hyperlab.evaluate import ensemble_members, evaluate

    sweep = tmp_path / "sweep"
    best = runs.read_metrics(source_runs["digits"])["ckpt/best"]
    for job, (acc, loss) in enumerate([(0.5, 0.9), (0.9, 0.2), (0.7, 0.5)]):
        (sweep / str(job)).mkdir(parents=True)
        runs.write_metrics(sweep / str(job), {"val/acc": acc, "val/loss": loss, "ckpt/best": f"{best}?job={job}"})
    assert ensemble_members(sweep, top_k=2, rank_by="val/acc") == [f"{best}?job=1", f"{best}?job=2"]
    assert ensemble_members(sweep, top_k=1, rank_by="val/loss") == [f"{best}?job=1"]  # a loss: lowest first
    with pytest.raises(ConfigError, match="nor a sweep whose jobs have a best checkpoint and 'val/f1'"):
        ensemble_members(sweep, top_k=2, rank_by="val/f1")
    for job in range(3):  # real checkpoints (the same one) for the evaluation
        runs.write_metrics(sweep / str(job), {"val/acc": 0.1 * job, "ckpt/best": best})
    metrics = evaluate(make_cfg(f"ckpt_path={sweep}", "top_k=2", config_name="eval", output_dir=tmp_path / "ev"))
    assert len(metrics["members"]) == 2
    # identical members: the ensemble's mean of probabilities scores exactly what each member scores
    assert metrics["test/acc"] == pytest.approx(metrics["members"][0]["test/acc"])
