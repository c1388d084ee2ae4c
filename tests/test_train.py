"""End-to-end runs of train() in-process on digits (2 epochs each unless stated)."""

import csv
import json
import os
import time
from pathlib import Path

import lightning as L
import pytest
import torch

from hyperlab import runs
from hyperlab.builders import build_module
from hyperlab.evaluate import evaluate
from hyperlab.train import train, train_once
from tests.conftest import trainer_of


def read_csv(path: Path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


REQUIRED = {
    "val/acc",
    "val/loss",
    "test/acc",
    "test/loss",
    "test/f1",
    "test/auroc",
    "trainer/global_step",
    "time/train_s",
    "model/params",
    "versions",
    "git",
    "command",
}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """One 2-epoch default run shared by the read-only tests below."""
    from hyperlab.config.cli import compose

    out = tmp_path_factory.mktemp("run")
    cfg = compose(["trainer.max_epochs=2", "lr=0.002"], out)
    returned = train(cfg)
    return out, returned


def test_metrics_json_holds_the_contract(run_dir):
    out, returned = run_dir
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) >= REQUIRED
    assert returned == metrics["val/acc"]  # train() returns optimized_metric for sweepers
    assert metrics["trainer/global_step"] == 2 * 20  # 1257 train rows / batch 64 -> 20 steps per epoch
    assert metrics["model/params"] == (64 * 256 + 256) + (256 * 256 + 256) + (256 * 10 + 10)
    assert metrics["model/flops"] == 2 * (64 * 256 + 256 * 256 + 256 * 10)  # a multiply-add is 2 FLOPs
    assert metrics["memory/peak_mb"] > 0
    assert (metrics["data/train_rows"], metrics["data/val_rows"], metrics["data/test_rows"]) == (1257, 180, 360)
    assert metrics["test/acc"] > 0.9 and metrics["val/acc"] > 0.9
    assert metrics["versions"]["torch"] == torch.__version__
    assert metrics["git"]["commit"] is None or len(metrics["git"]["commit"]) == 40
    assert Path(metrics["ckpt/best"]).name == f"epoch_{metrics['trainer/best_epoch']:03d}.ckpt"  # what a refit repeats


def test_checkpoints_load_with_weights_only(run_dir):
    out, _ = run_dir
    ckpts = sorted((out / "checkpoints").glob("*.ckpt"))
    assert {p.name for p in ckpts} >= {"last.ckpt"} and len(ckpts) == 2  # best (top-1) + last
    for path in ckpts:
        checkpoint = torch.load(path, weights_only=True)  # raises on any pickled module or partial
        assert checkpoint[runs.CONFIG_KEY]["lr"] == 0.002
        assert checkpoint["hyper_parameters"] == {
            "num_classes": 10,
            "task": "classification",
            "l1": 0.0,
            "l2": 0.0,
            "no_decay_bias_norm": False,
            "tbptt_steps": None,
            "temperature": 4.0,
            "alpha": 0.5,
            "lr_scales": None,
            "bytes_per_token": None,
            "val_metrics": "lean",
            "watched": ["val/acc", "val/loss"],
        }
        assert checkpoint["optimizer_states"][0]["param_groups"][0]["lr"] == 0.002


FULL_CLASSIFICATION = {"acc", "loss", "precision", "recall", "f1", "auroc"}


@pytest.mark.parametrize(
    ("overrides", "val_keys"),
    [
        ([], {"acc", "loss"}),  # lean: loss, accuracy and the watched keys (val/loss: checkpoint, early stopping)
        (["metrics.val=full"], FULL_CLASSIFICATION),
        (["optimized_metric=val/f1"], {"acc", "loss", "f1"}),  # a watched key is computed too
        (["data=diabetes", "loss=mse", "data.stratify=false", "optimized_metric=val/r2"], {"loss", "mse", "r2"}),
        (["data=diabetes", "loss=mse", "data.stratify=false", "optimized_metric=null", "metrics.val=full"],
         {"loss", "mse", "mae", "r2"}),
    ],
)  # fmt: skip
def test_the_metrics_setting_writes_exactly_its_documented_val_keys(overrides, val_keys, make_cfg):
    """Every epoch's validation and metrics.json hold these val/* keys; the test split always gets the full set."""
    cfg = make_cfg(*overrides, "trainer.max_epochs=1")
    metrics = train_once(cfg)
    assert {k.removeprefix("val/") for k in metrics if k.startswith("val/")} == val_keys
    regression = "data=diabetes" in overrides
    full_test = {"loss", "mse", "mae", "r2"} if regression else FULL_CLASSIFICATION
    assert {k.removeprefix("test/") for k in metrics if k.startswith("test/")} == full_test
    logged = {k.removeprefix("val/") for r in read_csv(Path(cfg.paths.output_dir) / "csv" / "metrics.csv") for k in r}
    assert {k for k in logged if k in FULL_CLASSIFICATION | full_test} == val_keys  # per epoch: the same set


def test_csv_logger_writes_per_epoch_metrics(run_dir):
    out, _ = run_dir
    rows = read_csv(out / "csv" / "metrics.csv")
    epochs_with_val = {r["epoch"] for r in rows if r.get("val/loss")}
    assert epochs_with_val >= {"0", "1"}


def test_eval_reproduces_test_metrics_from_the_checkpoint_alone(run_dir, make_cfg, tmp_path):
    out, _ = run_dir
    trained = json.loads((out / "metrics.json").read_text())
    cfg = make_cfg(f"ckpt_path={trained['ckpt/best']}", config_name="eval", output_dir=tmp_path / "eval")
    metrics = evaluate(cfg)
    assert metrics["test/acc"] == pytest.approx(trained["test/acc"], abs=1e-7)
    assert metrics["test/loss"] == pytest.approx(trained["test/loss"], rel=1e-6)
    rows = read_csv(tmp_path / "eval" / "predictions.csv")
    assert len(rows) == 360
    accuracy = sum(r["target"] == r["prediction"] for r in rows) / len(rows)
    assert accuracy == pytest.approx(trained["test/acc"], abs=1e-6)


def test_a_checkpoint_naming_the_old_flat_module_paths_still_evaluates(run_dir, make_cfg, tmp_path):
    """Checkpoints written before src/hyperlab was grouped into folders name hyperlab.losses, hyperlab.callbacks,
    hyperlab.checkpoints, ... in their stored config: eval.py rebuilds them all the same."""
    out, _ = run_dir
    trained = json.loads((out / "metrics.json").read_text())
    checkpoint = torch.load(trained["ckpt/best"], weights_only=True)
    text = json.dumps(checkpoint[runs.CONFIG_KEY])
    for new, old in [
        ("hyperlab.training.losses.", "hyperlab.losses."),
        ("hyperlab.training.checkpoints.", "hyperlab.checkpoints."),
        ("hyperlab.training.callbacks.", "hyperlab.callbacks."),
    ]:
        assert new in text
        text = text.replace(new, old)
    checkpoint[runs.CONFIG_KEY] = json.loads(text)
    torch.save(checkpoint, tmp_path / "old.ckpt")
    metrics = evaluate(make_cfg(f"ckpt_path={tmp_path / 'old.ckpt'}", config_name="eval", output_dir=tmp_path / "e"))
    assert metrics["test/acc"] == pytest.approx(trained["test/acc"], abs=1e-7)


def test_same_seed_same_metrics_and_another_seed_differs(make_cfg, tmp_path):
    a = train(make_cfg("seed=7", "trainer.max_epochs=1", output_dir=tmp_path / "a"))
    b = train(make_cfg("seed=7", "trainer.max_epochs=1", output_dir=tmp_path / "b"))
    train(make_cfg("seed=8", "trainer.max_epochs=1", output_dir=tmp_path / "c"))
    ma, mb, mc = (runs.read_metrics(tmp_path / d) for d in "abc")
    assert (a, ma["val/loss"], ma["test/loss"]) == (b, mb["val/loss"], mb["test/loss"])
    assert ma["val/loss"] != mc["val/loss"]


@pytest.mark.parametrize("stored_as", ["tensor", "list of ints (checkpoints before 2026-12-06)"])
def test_the_rng_states_a_checkpoint_stores_are_the_ones_a_resume_draws_from(stored_as, tmp_path):
    """RunState's RNG state (torch and Python) survives a weights-only save and load, and a resume applies it: the
    next draws are those the saving run made next. The Python state is one tensor; the older list still loads."""
    import random

    from hyperlab.training.callbacks import RunState

    random.seed(3), torch.manual_seed(3)
    state = RunState({}).state_dict()
    if stored_as != "tensor":
        state["python"][1] = state["python"][1].tolist()
    else:
        assert torch.is_tensor(state["python"][1]) and state["python"][1].shape == (625,)
    expected = [random.random() for _ in range(3)], torch.rand(3)
    path = tmp_path / "rng.pt"
    torch.save(state, path)
    resumed = RunState({})
    assert resumed.state_key == "RestoreRNG"  # its name in checkpoints before 2026-12-06, which still resume
    resumed.load_state_dict(torch.load(path, weights_only=True))
    random.seed(0), torch.manual_seed(0)  # a fresh process draws something else ...
    resumed.on_train_start(None, None)  # ... until the checkpoint's states are applied
    assert [random.random() for _ in range(3)] == expected[0] and torch.equal(torch.rand(3), expected[1])


@pytest.mark.parametrize(
    "loader",
    [  # a worker process draws indices ahead; starting one costs ~2 s: the slow tier's
        pytest.param([], id="device-resident"),
        pytest.param(
            ["data.device_resident=false", "data.num_workers=1"], id="dataloader-workers", marks=pytest.mark.slow
        ),
    ],
)
def test_resume_from_epoch_2_matches_an_unbroken_run(make_cfg, tmp_path, loader):
    keep_all = ["trainer.max_epochs=4", "callbacks.model_checkpoint.save_top_k=-1", "model.dropout=0.2", *loader]
    train(make_cfg(*keep_all, output_dir=tmp_path / "unbroken"))
    epoch2 = tmp_path / "unbroken" / "checkpoints" / "epoch_001.ckpt"  # saved at the end of the 2nd epoch
    assert torch.load(epoch2, weights_only=True)["epoch"] == 1
    train(make_cfg(*keep_all, f"ckpt_path={epoch2}", output_dir=tmp_path / "resumed"))
    unbroken, resumed = runs.read_metrics(tmp_path / "unbroken"), runs.read_metrics(tmp_path / "resumed")
    assert resumed["ckpt/resumed_from"] == str(epoch2)
    assert resumed["trainer/global_step"] == unbroken["trainer/global_step"] == 80
    for key in ("val/loss", "test/loss", "test/acc"):
        assert resumed[key] == unbroken[key], key
    last_a = torch.load(tmp_path / "unbroken/checkpoints/last.ckpt", weights_only=True)["state_dict"]
    last_b = torch.load(tmp_path / "resumed/checkpoints/last.ckpt", weights_only=True)["state_dict"]
    assert all(torch.equal(last_a[k], last_b[k]) for k in last_a)


@pytest.mark.parametrize(
    ("overrides", "steps"),
    [
        (["trainer.max_epochs=2"], 40),
        (["trainer.max_epochs=2", "trainer.accumulate_grad_batches=2"], 20),
        (["trainer.max_epochs=5", "trainer.max_steps=7"], 7),
        (["trainer.max_epochs=1", "batch_size=128"], 10),
    ],
)
def test_epochs_steps_accumulation_and_batch_size_set_global_step(overrides, steps, make_cfg):
    train(make_cfg(*overrides, "callbacks=none", "logger=[]", "test=false"))
    assert runs.read_metrics(Path(make_cfg().paths.output_dir))["trainer/global_step"] == steps


def test_lr_reaches_the_optimizer_inside_the_trainer(make_cfg):
    cfg = make_cfg("lr=0.0042", "optimizer=sgd", "trainer.max_epochs=1", "callbacks=none")
    datamodule, module = build_module(cfg)
    trainer = trainer_of(cfg)
    trainer.fit(module, datamodule=datamodule)
    assert type(trainer.optimizers[0]) is torch.optim.SGD
    assert trainer.optimizers[0].param_groups[0]["lr"] == 0.0042


@pytest.mark.parametrize(("precision", "dtype"), [("bf16-mixed", torch.bfloat16), ("32-true", None)])
def test_precision_sets_autocast_in_the_forward(precision, dtype, make_cfg):
    cfg = make_cfg(f"trainer.precision={precision}", "trainer.max_steps=2", "callbacks=none", "logger=[]")
    datamodule, module = build_module(cfg)
    seen = []
    module.net.register_forward_hook(
        lambda *_: seen.append(torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else None)
    )
    trainer_of(cfg).fit(module, datamodule=datamodule)
    assert seen and set(seen) == {dtype}


@pytest.mark.parametrize("precision", ["medium", "highest"])
def test_matmul_precision_sets_torchs_float32_matmul_precision(precision, make_cfg):
    torch.set_float32_matmul_precision("high")  # neither value: the run must set it
    try:
        train(make_cfg(f"matmul_precision={precision}", "trainer.max_steps=2", "callbacks=none", "test=false"))
        assert torch.get_float32_matmul_precision() == precision
    finally:
        torch.set_float32_matmul_precision("highest")


def test_debug_overfit_drives_train_loss_to_zero(make_cfg):
    # one batch an epoch: the loss crosses 0.01 near epoch 45 (0.0032 at 60, measured 2026-12-04); the full train
    # split for 60 epochs would also drive it low, so the step count says the option took hold
    train(make_cfg("debug=overfit", "trainer.max_epochs=60", "test=false", fast=False))
    out = Path(make_cfg().paths.output_dir)
    losses = [float(r["train/loss"]) for r in read_csv(out / "csv" / "metrics.csv") if r["train/loss"]]
    assert losses[0] > 1.0 and losses[-1] < 0.01
    assert runs.read_metrics(out)["trainer/global_step"] == 60


def test_the_default_profiler_opens_one_shared_no_op_context_and_simple_still_profiles(make_cfg):
    """trainer.profiler's default does nothing at no cost (one shared nullcontext, not a new generator-based one
    around each of Lightning's ~60 hook calls a step); a named profiler still replaces it."""
    import contextlib

    from lightning.pytorch.profilers import SimpleProfiler

    from tests.conftest import trainer_of

    profiler = trainer_of(make_cfg()).profiler
    assert isinstance(profiler.profile("a"), contextlib.nullcontext) and profiler.profile("a") is profiler.profile("b")
    assert isinstance(trainer_of(make_cfg("trainer.profiler=simple")).profiler, SimpleProfiler)


def test_debug_profiler_writes_a_report(make_cfg):
    train(make_cfg("debug=profiler", "trainer.max_epochs=1", "test=false", fast=False))
    report = (Path(make_cfg().paths.output_dir) / "fit-profile.txt").read_text()
    assert "run_training_epoch" in report


def test_debug_fdr_runs_one_batch_and_keeps_no_checkpoint(make_cfg):
    train(make_cfg("debug=fdr", fast=False))
    out = Path(make_cfg().paths.output_dir)
    assert runs.read_metrics(out)["trainer/global_step"] == 1
    assert not (out / "checkpoints").exists()


def make_run(parent: Path, name: str, overrides: list[str], with_ckpt: bool = True) -> Path:
    run = parent / name
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    if with_ckpt:
        (run / "checkpoints").mkdir()
        (run / "checkpoints" / "last.ckpt").write_bytes(b"x")
    return run


def test_resume_auto_picks_the_newest_last_ckpt_of_the_same_overrides(tmp_path):
    old = make_run(tmp_path, "r1", ["lr=0.1"])
    newer = make_run(tmp_path, "r2", ["lr=0.1", "resume=auto"])
    make_run(tmp_path, "r3", ["lr=0.2"])  # other overrides: never picked
    os.utime(old / "checkpoints" / "last.ckpt", (time.time() - 100, time.time() - 100))
    current = make_run(tmp_path, "r4", ["resume=auto", "lr=0.1"], with_ckpt=False)
    assert runs.find_resume_checkpoint(current) == newer / "checkpoints" / "last.ckpt"
    lonely = make_run(tmp_path, "r5", ["lr=0.3", "resume=auto"], with_ckpt=False)
    assert runs.find_resume_checkpoint(lonely) is None


@pytest.mark.parametrize(("algorithm", "value"), [("value", 1e-3), ("norm", 1e-2)])
def test_gradient_clipping_bounds_what_the_optimizer_sees(algorithm, value, make_cfg):
    cfg = make_cfg(
        f"trainer.gradient_clip_val={value}",
        f"trainer.gradient_clip_algorithm={algorithm}",
        "trainer.max_steps=5",
        "callbacks=none",
        "logger=[]",
    )
    datamodule, module = build_module(cfg)
    trainer = trainer_of(cfg)
    seen = []

    def record(optimizer, args, kwargs):  # Lightning's closure (backward, then clipping) runs inside step()
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        seen.append(
            max(g.abs().max() for g in grads)
            if algorithm == "value"
            else torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
        )

    class Hook(L.Callback):
        def on_train_start(self, trainer, pl_module):
            trainer.optimizers[0].register_step_post_hook(record)

    trainer.callbacks.append(Hook())
    trainer.fit(module, datamodule=datamodule)
    assert len(seen) == 5 and all(v <= value * (1 + 1e-5) for v in seen)
    assert max(seen) == pytest.approx(value, rel=1e-4)  # the unclipped gradients are far larger: the bound binds


def test_early_stopping_stops_when_patience_runs_out(make_cfg):
    # min_delta=10: no epoch can improve val/loss by 10, so epoch 0 sets the best and patience=2 ends epoch 2
    train(
        make_cfg(
            "trainer.max_epochs=10",
            "callbacks.early_stopping.patience=2",
            "callbacks.early_stopping.min_delta=10",
            "test=false",
        )
    )
    metrics = runs.read_metrics(Path(make_cfg().paths.output_dir))
    assert (metrics["trainer/epoch"], metrics["trainer/global_step"]) == (3, 60)


def test_resume_auto_keeps_a_best_epoch_from_before_the_interruption(make_cfg, tmp_path):
    # mode=max on val/loss makes the *first* epoch the best one, so it lies before the interruption
    args = [
        "trainer.max_epochs=4",
        "callbacks.model_checkpoint.save_top_k=-1",
        "callbacks.model_checkpoint.mode=max",
        "callbacks.early_stopping=null",
    ]
    train(make_cfg(*args, output_dir=tmp_path / "runs" / "a"))
    complete = runs.read_metrics(tmp_path / "runs" / "a")
    ckpts = tmp_path / "runs" / "a" / "checkpoints"
    assert Path(complete["ckpt/best"]).name == "epoch_000.ckpt"
    (ckpts / "last.ckpt").write_bytes((ckpts / "epoch_001.ckpt").read_bytes())  # as if killed after epoch 2
    for later in ("epoch_002.ckpt", "epoch_003.ckpt"):
        (ckpts / later).unlink()
    train(make_cfg(*args, "resume=auto", output_dir=tmp_path / "runs" / "b"))
    resumed = runs.read_metrics(tmp_path / "runs" / "b")
    assert resumed["ckpt/resumed_from"] == str(ckpts / "last.ckpt")
    assert resumed["ckpt/best"] == complete["ckpt/best"]
    assert (resumed["val/loss"], resumed["test/acc"]) == (complete["val/loss"], complete["test/acc"])
    assert sorted(p.name for p in ckpts.iterdir()) == [f"epoch_00{i}.ckpt" for i in range(4)] + ["last.ckpt"]


def test_cross_validation_trains_every_fold_and_reports_mean_and_std(make_cfg):
    import statistics

    returned = train(make_cfg("data.num_folds=3", "trainer.max_epochs=1", "callbacks=none", "logger=[]"))
    out = Path(make_cfg().paths.output_dir)
    metrics = runs.read_metrics(out)
    folds = [runs.read_metrics(out / f"fold_{k}") for k in range(3)]
    assert returned == metrics["val/acc"] == pytest.approx(statistics.fmean(f["val/acc"] for f in folds))
    assert metrics["val/acc_std"] == pytest.approx(statistics.stdev(f["val/acc"] for f in folds))
    assert metrics["val/acc_se"] == pytest.approx(metrics["val/acc_std"] / 3**0.5)
    assert [f["val/acc"] for f in metrics["folds"]] == [f["val/acc"] for f in folds]
    # callbacks=none keeps no checkpoint: the final weights are scored, the last epoch (0) is the scored one
    assert [f["trainer/best_epoch"] for f in metrics["folds"]] == [0, 0, 0]
    assert len({f["val/loss"] for f in folds}) == 3  # three different validation folds
    assert metrics["data/num_folds"] == 3


def test_the_folds_of_a_cross_validated_run_evaluate_as_an_ensemble(make_cfg, tmp_path):
    from hyperlab.evaluate import evaluate
    from hyperlab.training.supervised import classification_metrics

    run = tmp_path / "cv"
    train(make_cfg("data.num_folds=3", "trainer.max_epochs=2", output_dir=run))
    folds = runs.read_metrics(run)["folds"]
    cfg = make_cfg(f"ckpt_path={run}", config_name="eval", output_dir=tmp_path / "eval")
    metrics = evaluate(cfg)
    assert [m["ckpt_path"] for m in metrics["members"]] == [f["ckpt/best"] for f in folds]
    assert [m["test/acc"] for m in metrics["members"]] == pytest.approx([f["test/acc"] for f in folds], abs=1e-7)
    rows = read_csv(tmp_path / "eval" / "predictions.csv")
    probs = torch.tensor([[float(r[f"prob_{c}"]) for c in range(10)] for r in rows])
    targets = torch.tensor([int(r["target"]) for r in rows])
    recomputed = classification_metrics(10, "test/")(probs, targets)  # mean-of-probabilities file -> metrics
    assert metrics["test/acc"] == pytest.approx(recomputed["test/acc"].item(), abs=1e-6)
    assert 0.8 < metrics["test/vote_acc"] <= 1.0


def test_accumulated_gradients_give_the_same_update_as_one_big_batch(make_cfg):
    def one_update(batch_size: int, accumulate: int) -> list[torch.Tensor]:
        cfg = make_cfg(
            "optimizer=sgd",
            "lr=0.5",
            f"batch_size={batch_size}",
            f"trainer.accumulate_grad_batches={accumulate}",
            "trainer.max_steps=1",
            "++trainer.num_sanity_val_steps=0",
            "++trainer.limit_val_batches=0",
            "callbacks=none",
            "logger=[]",
        )
        L.seed_everything(0)
        datamodule, module = build_module(cfg)
        trainer_of(cfg).fit(module, datamodule=datamodule)
        return [p.detach().clone() for p in module.parameters()]

    big, accumulated, small = one_update(64, 1), one_update(32, 2), one_update(32, 1)
    for a, b in zip(big, accumulated, strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
    assert max((a - c).abs().max().item() for a, c in zip(big, small, strict=True)) > 1e-3  # not trivially equal


def test_device_resident_and_dataloader_paths_train_identically(make_cfg):
    from hyperlab.data import TensorBatches

    results = {}
    for resident in (True, False):
        cfg = make_cfg(f"data.device_resident={resident}", "model.dropout=0.2", "callbacks=none", "logger=[]")
        L.seed_everything(0)
        datamodule, module = build_module(cfg)
        trainer = trainer_of(cfg)
        trainer.fit(module, datamodule=datamodule)
        assert isinstance(trainer.train_dataloader, TensorBatches) is resident  # the fast path is taken
        results[resident] = trainer.validate(module, datamodule=datamodule, verbose=False)[0]
    assert results[True] == results[False]


def test_augmentation_reaches_training_batches_and_never_validation(make_cfg):
    cfg = make_cfg("augment=image", "augment.erasing=1.0", "trainer.max_steps=3", "callbacks=none", "logger=[]")
    datamodule, module = build_module(cfg)
    trainer = trainer_of(cfg)
    seen = {True: [], False: []}
    module.net.register_forward_pre_hook(lambda net, args: seen[net.training].append(args[0].clone()))
    trainer.fit(module, datamodule=datamodule)
    rows = {tuple(r) for r in datamodule.splits["train"].tensors[0].flatten(1).tolist()}
    assert seen[True] and not any(tuple(r) in rows for x in seen[True] for r in x.flatten(1).tolist())
    val_rows = {tuple(r) for r in datamodule.splits["val"].tensors[0].flatten(1).tolist()}
    assert seen[False] and all(tuple(r) in val_rows for x in seen[False] for r in x.flatten(1).tolist())


def test_truncated_bptt_bounds_the_backward_length_and_carries_the_state(make_cfg):
    cfg = make_cfg(
        "data=text",
        "model=lstm",
        "model.width=32",
        "model.tbptt_steps=16",
        "scheduler=cosine",
        "trainer.max_epochs=1",
        "++trainer.limit_train_batches=2",
        "++trainer.limit_val_batches=1",
        "callbacks=none",
        "logger=[]",
    )
    datamodule, module = build_module(cfg)
    trainer = trainer_of(cfg)
    chunks = []
    step = module.net.step

    def recording_step(x, state=None):
        if module.net.training:  # not the validation forwards
            chunks.append(
                (x.shape[1], None if state is None else (state[0].requires_grad, state[0].abs().sum().item()))
            )
        return step(x, state)

    module.net.step = recording_step
    trainer.fit(module, datamodule=datamodule)
    assert trainer.global_step == 2 * 4  # one optimizer step per 16-character chunk of the 64-character windows
    assert [length for length, _ in chunks] == [16] * 8
    carried = [state for _, state in chunks if state is not None]
    assert len(carried) == 2 * 3 and all(not grad and size > 0 for grad, size in carried)  # detached, not reset
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)  # cosine over all 8 steps


def test_tbptt_refuses_what_manual_optimisation_cannot_apply(make_cfg):
    from hyperlab.config.rules import check
    from hyperlab.errors import ConfigError

    with pytest.raises(ConfigError, match="model.tbptt_steps optimises manually"):
        check(make_cfg("data=text", "model=lstm", "model.tbptt_steps=8", "trainer.gradient_clip_val=1.0"))
    lstm = ["data=text", "model=lstm", "model.tbptt_steps=8"]
    with pytest.raises(ConfigError, match="one step per chunk: scheduler=plateau, adversarial.attack not applied"):
        check(make_cfg(*lstm, "scheduler=plateau", "adversarial.attack=pgd"))
    with pytest.raises(Exception, match="need a language model over token data"):
        build_module(make_cfg("model=lstm", "model.tbptt_steps=8"))
    with pytest.raises(ConfigError, match="use model=lstm or model=transformer"):
        build_module(make_cfg("data=text"))


# Each model on the data that suits it, a short CPU run, clearly above chance: digits 0.1; text 0.21 for always
# predicting the most frequent character, 0.30 for the best bigram table (counted on the train split);
# synthetic 0.25; breast cancer 0.63 for the majority class; regression R^2 0 for predicting the mean.
MODELS_BEAT_CHANCE = [
    (["model=resnet"], "test/acc", 0.9),
    (["model=transformer"], "test/acc", 0.85),
    (["model=lstm"], "test/acc", 0.85),
    (["experiment=text_lstm", "trainer.max_epochs=10"], "test/acc", 0.35),
    (["data=text", "model=transformer", "lr=3e-3", "batch_size=16"], "test/acc", 0.25),
    (["experiment=diabetes_mlp"], "test/r2", 0.3),
    (["data=breast_cancer", "loss=bce"], "test/acc", 0.9),
    (["data=synthetic"], "test/acc", 0.6),
]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("overrides", "metric", "floor"), MODELS_BEAT_CHANCE, ids=lambda v: " ".join(v) if isinstance(v, list) else None
)
def test_each_model_beats_chance_on_its_data(overrides, metric, floor, make_cfg):
    train(make_cfg("trainer.max_epochs=10", *overrides, fast=False))
    assert runs.read_metrics(Path(make_cfg().paths.output_dir))[metric] > floor


@pytest.mark.parametrize(
    ("rows", "counts", "folds", "said"),
    [
        (26, [9, 10, 7], None, ["validation holds 26 rows:", "3.8 points", "data.num_folds=5"]),
        (400, [130, 140, 130], None, None),
        (29, [10, 10, 9], 5, None),  # k-fold: the estimate is the mean over all rows; every class scored
        (12, [6, 5, 1], 10, ["12 rows, 1 of its rarest class", "data.num_folds below 10"]),
        (300, [200, 99, 1], None, ["1 of its rarest class"]),
        (0, None, None, None),  # a refit: no validation split, nothing chosen by it
    ],
)
def test_a_small_validation_split_gets_advice(rows, counts, folds, said):
    from hyperlab.training.small_validation import advice

    message = advice(rows, counts, folds)
    assert (message is None) == (said is None)
    assert all(part in message for part in said or [])


def test_a_run_on_a_few_dozen_rows_says_so_once_and_digits_does_not(make_cfg, capsys, monkeypatch):
    from hyperlab.training import small_validation

    monkeypatch.setattr(small_validation, "_said", [])
    train(make_cfg("data=wine", "trainer.max_epochs=1"))  # 26 validation rows
    assert capsys.readouterr().out.count("warning: validation holds 26 rows") == 1
    datamodule, _ = build_module(make_cfg("data=wine"))
    small_validation.warn_if_small(datamodule, None)  # a second split in the same process: not said again
    assert "warning: validation" not in capsys.readouterr().out
    monkeypatch.setattr(small_validation, "_said", [])
    train(make_cfg("trainer.max_epochs=1"))  # digits: 270 validation rows
    assert "warning: validation" not in capsys.readouterr().out


@pytest.mark.parametrize(
    ("steps", "rows", "batch", "accumulate", "epochs"),
    [
        (180, 1150, 64, 1, 10),
        (360, 1150, 64, 1, 20),
        (180, 53, 64, 1, 180),
        (100, 1000, 10, 1, 1),
        (101, 1000, 10, 2, 3),
    ],
)
def test_a_step_floor_is_whole_epochs_that_reach_it(steps, rows, batch, accumulate, epochs):
    from hyperlab.training.step_budget import epochs_for

    assert epochs_for(steps, rows, batch, accumulate) == epochs


def test_min_train_steps_raises_the_epochs_of_small_data_only(make_cfg, tmp_path):
    """A floor of 12 steps: wine's 126 train rows make 1 step an epoch (batch 128): 2 epochs become 12; digits'
    1257 rows make 10 steps an epoch: its 2 epochs (20 steps) already reach it and stay."""
    small = train_once(make_cfg("data=wine", "batch_size=128", "min_train_steps=12", output_dir=tmp_path / "w"))
    assert (small["trainer/global_step"], small["trainer/epoch"]) == (12, 12)
    large = train_once(make_cfg("batch_size=128", "min_train_steps=12", output_dir=tmp_path / "d"))
    assert (large["trainer/global_step"], large["data/train_rows"]) == (20, 1257)
    plain = train_once(make_cfg("data=wine", "batch_size=128", output_dir=tmp_path / "p"))  # off: 2 epochs
    assert plain["trainer/global_step"] == 2
