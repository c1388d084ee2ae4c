"""The fast paths of a training step and its checkpoints change speed, never results."""

import os
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from hyperlab.builders import build_module
from hyperlab.train import train
from hyperlab.training.callbacks import NonFiniteLossError, StopOnNonFiniteLoss
from hyperlab.training.checkpoints import BackgroundCheckpointIO, DirectCheckpointIO
from tests.conftest import trainer_of


def fitted_weights(make_cfg, *overrides: str) -> dict:
    cfg = make_cfg(*overrides, "callbacks=none", "test=false", "logger=[]", "trainer.enable_progress_bar=false")
    torch.manual_seed(0)
    datamodule, module = build_module(cfg)
    trainer = trainer_of(cfg)
    trainer.fit(module, datamodule=datamodule)
    return {k: v.clone() for k, v in module.net.state_dict().items()}, trainer


@pytest.mark.parametrize("optimizer", ["adamw", "adam", "sgd", "adagrad"])
def test_fused_optimizers_are_the_default_and_train_like_the_unfused_ones(optimizer, make_cfg):
    fused, trainer = fitted_weights(make_cfg, f"optimizer={optimizer}")
    assert trainer.optimizers[0].defaults["fused"] is True
    plain, trainer = fitted_weights(make_cfg, f"optimizer={optimizer}", "optimizer.fused=false")
    assert not trainer.optimizers[0].defaults["fused"]
    for name in fused:  # 40 steps apart only by floating-point summation order
        torch.testing.assert_close(fused[name], plain[name], rtol=1e-4, atol=1e-5)


def test_train_loss_and_accuracy_from_on_device_sums_equal_the_epoch_means(make_cfg):
    """One epoch with a negligible LR: the logged train/loss and train/acc are the row means of the initial net."""
    cfg = make_cfg("optimizer=sgd", "lr=1e-12", "trainer.max_epochs=1", "callbacks=none", "test=false")
    datamodule, module = build_module(cfg)
    x, y = datamodule.splits["train"].tensors[:2]
    with torch.no_grad():
        logits = module.net(x)
    trainer = trainer_of(cfg)
    trainer.fit(module, datamodule=datamodule)
    logged = trainer.logged_metrics
    assert float(logged["train/loss"]) == pytest.approx(F.cross_entropy(logits, y).item(), abs=1e-5)
    assert float(logged["train/acc"]) == pytest.approx((logits.argmax(1) == y).float().mean().item(), abs=1e-6)


def test_the_attributes_set_every_step_bypass_the_modules_setattr_checks(make_cfg, monkeypatch):
    """Lightning names its current hook on the module ~40 times a step; that and the running sums skip
    nn.Module.__setattr__ (its parameter/buffer/submodule checks), and the sums still come out right (the test
    above)."""
    cfg = make_cfg("trainer.max_epochs=1", "callbacks=none", "test=false", "logger=[]")
    datamodule, module = build_module(cfg)
    checked = []
    original = torch.nn.Module.__setattr__
    monkeypatch.setattr(torch.nn.Module, "__setattr__", lambda m, k, v: checked.append(k) or original(m, k, v))
    trainer_of(cfg).fit(module, datamodule=datamodule)
    assert module._current_fx_name is None and module.train_sums is None and module.train_count > 0
    assert not {"_current_fx_name", "train_sums", "train_count"} & set(checked)
    assert "training" in checked  # the rest still goes through nn.Module (train()/eval() set `training`)


class FakeTrainer(SimpleNamespace):
    log_every_n_steps = 10
    current_epoch = 1
    checkpoint_callback = None


def test_the_non_finite_guard_reads_its_flag_at_logging_intervals_and_names_the_window():
    guard, trainer = StopOnNonFiniteLoss(), FakeTrainer(global_step=0)
    reads = []
    original = guard.check
    guard.check = lambda t: reads.append(t.global_step) or original(t)
    for step in range(1, 21):
        trainer.global_step = step
        loss = torch.tensor(float("nan") if step == 13 else 1.0)
        if step < 20:
            guard.on_train_batch_end(trainer, None, {"loss": loss}, None, step)
            continue
        with pytest.raises(NonFiniteLossError, match=r"between step 11 and step 20 \(epoch 1\)"):
            guard.on_train_batch_end(trainer, None, {"loss": loss}, None, step)
    assert reads == [10, 20]  # two host reads in 20 steps


def test_the_non_finite_guard_runs_before_a_checkpoint_is_written():
    guard, trainer = StopOnNonFiniteLoss(), FakeTrainer(global_step=3)
    guard.on_train_batch_end(trainer, None, torch.tensor(float("inf")), None, 2)
    with pytest.raises(NonFiniteLossError, match="between step 1 and step 3"):
        guard.on_save_checkpoint(trainer, None, {})


def checkpoint_run(make_cfg, *overrides: str):
    cfg = make_cfg("trainer.max_epochs=4", "callbacks.early_stopping=null", "test=false", *overrides)
    train(cfg)
    return Path(cfg.paths.output_dir) / "checkpoints"


def test_monitor_candidates_are_lightnings_copied_without_deepcopy(make_cfg):
    """The metrics a checkpoint decision reads: Lightning's values, epoch and step, as copies that later logging
    cannot change."""
    from lightning.pytorch.callbacks import ModelCheckpoint as LightningCheckpoint

    cfg = make_cfg("trainer.max_epochs=2", "test=false", "logger=[]", "callbacks.lr_monitor=null")
    datamodule, module = build_module(cfg)
    trainer = trainer_of(cfg)
    trainer.fit(module, datamodule=datamodule)
    ours = trainer.checkpoint_callback._monitor_candidates(trainer)
    theirs = LightningCheckpoint._monitor_candidates(trainer.checkpoint_callback, trainer)
    assert ours.keys() == theirs.keys() >= {"val/loss", "train/acc", "epoch", "step"}
    for key in ours:
        assert torch.equal(ours[key], theirs[key]) and ours[key].dtype == theirs[key].dtype, key
    assert (int(ours["epoch"]), int(ours["step"])) == (2, 40)  # after fit: two epochs done, 20 steps each
    ours["val/loss"].add_(1.0)
    assert trainer.callback_metrics["val/loss"] == theirs["val/loss"]


def test_last_is_a_hard_link_to_the_best_when_they_hold_the_same_state(make_cfg):
    folder = checkpoint_run(make_cfg)  # val/loss improves every epoch on this seed: epoch 3 is best and last
    assert sorted(p.name for p in folder.iterdir()) == ["epoch_003.ckpt", "last.ckpt"]
    assert os.path.samefile(folder / "last.ckpt", folder / "epoch_003.ckpt")  # one write, two names


def test_last_holds_the_newest_state_when_it_is_not_the_best(make_cfg):
    folder = checkpoint_run(make_cfg, "callbacks.model_checkpoint.mode=max")  # val/loss max: epoch 0 stays best
    best = torch.load(folder / "epoch_000.ckpt", weights_only=True)
    last = torch.load(folder / "last.ckpt", weights_only=True)
    assert (best["epoch"], last["epoch"], last["global_step"]) == (0, 3, 80)
    assert not os.path.samefile(folder / "last.ckpt", folder / "epoch_000.ckpt")


def test_checkpoints_are_written_off_the_training_thread(make_cfg, monkeypatch):
    threads = []
    save = DirectCheckpointIO.save_checkpoint
    monkeypatch.setattr(
        DirectCheckpointIO,
        "save_checkpoint",
        lambda self, *a, **k: threads.append(threading.current_thread().name) or save(self, *a, **k),
    )
    folder = checkpoint_run(
        make_cfg, "trainer.plugins=[{_target_:hyperlab.training.checkpoints.BackgroundCheckpointIO}]"
    )
    assert threads and threading.main_thread().name not in threads
    assert torch.load(folder / "last.ckpt", weights_only=True)["epoch"] == 3  # complete when fit returns


def test_checkpoint_cadence_in_steps(make_cfg):
    folder = checkpoint_run(
        make_cfg,
        "callbacks.model_checkpoint.every_n_train_steps=30",
        "callbacks.model_checkpoint.every_n_epochs=null",
        "callbacks.model_checkpoint.save_top_k=-1",
        "callbacks.model_checkpoint.monitor=null",
        "callbacks.model_checkpoint.filename='step_{step:03d}'",
    )
    steps = sorted(torch.load(p, weights_only=True)["global_step"] for p in folder.glob("step_*.ckpt"))
    assert steps == [30, 60]


def test_checkpoint_cadence_in_training_time(make_cfg, monkeypatch):
    """train_time_interval: a save once that much training time has passed, checked after every step (here a
    clock that advances 1 s a step and an interval of 25 s)."""
    from lightning.pytorch.callbacks import model_checkpoint

    clock = iter(range(10_000))
    monkeypatch.setattr(model_checkpoint, "time", SimpleNamespace(monotonic=lambda: float(next(clock))))
    folder = checkpoint_run(
        make_cfg,
        "+callbacks.model_checkpoint.train_time_interval={_target_:datetime.timedelta,seconds:25}",
        "callbacks.model_checkpoint.every_n_epochs=null",
        "callbacks.model_checkpoint.save_top_k=-1",
        "callbacks.model_checkpoint.monitor=null",
        "callbacks.model_checkpoint.filename='step_{step:03d}'",
    )
    steps = sorted(torch.load(p, weights_only=True)["global_step"] for p in folder.glob("step_*.ckpt"))
    assert steps == [25, 50, 75]


@pytest.mark.parametrize("every_s, written_at", [(3, [3, 6, 7]), (0, list(range(8)))])
def test_held_checkpoints_reach_the_disk_when_due_and_at_the_end(make_cfg, monkeypatch, every_s, written_at):
    """A clock that reads the epoch: saves held with write_every_s=3 are written after epochs 3 and 6 and at the
    end of fit, each time the newest best and last.ckpt; with 0 every epoch's save is written as it happens."""
    from hyperlab.training import held_checkpoints
    from hyperlab.training.supervised import Supervised

    clock, writes, save = [0.0], [], DirectCheckpointIO.save_checkpoint
    monkeypatch.setattr(held_checkpoints.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(Supervised, "on_train_epoch_start", lambda self: clock.__setitem__(0, self.current_epoch))

    def recorded(self, checkpoint, path, storage_options=None):
        writes.append((clock[0], Path(path).name, checkpoint["epoch"]))
        save(self, checkpoint, path, storage_options)

    monkeypatch.setattr(DirectCheckpointIO, "save_checkpoint", recorded)
    folder = checkpoint_run(make_cfg, "trainer.max_epochs=8", f"callbacks.model_checkpoint.write_every_s={every_s}")
    assert sorted({at for at, _, _ in writes}) == written_at
    assert all(epoch == at for at, name, epoch in writes if name == "last.ckpt")  # the newest state each time
    assert torch.load(folder / "last.ckpt", weights_only=True)["epoch"] == 7
    metrics = __import__("json").loads((folder.parent / "metrics.json").read_text())
    assert Path(metrics["ckpt/best"]).is_file() and len(list(folder.glob("epoch_*.ckpt"))) == 1
    if every_s:  # at most the newest best and last.ckpt per write: a best replaced in between is never written
        assert len(writes) <= 2 * len(written_at)


def test_a_held_save_is_a_point_in_time_copy_of_every_tensor():
    """Training goes on in place after a save: every tensor of the held copy is its own, at any depth, and the
    containers keep their types (an OrderedDict state_dict, a namedtuple) and their other values."""
    from collections import OrderedDict, namedtuple

    from hyperlab.training.held_checkpoints import held_copy

    Pair = namedtuple("Pair", "step lr")
    weight, moment = torch.zeros(3), torch.ones(2)
    checkpoint = {
        "state_dict": OrderedDict(w=weight),
        "optimizer_states": [{"state": {0: {"exp_avg": moment, "step": 7}}, "groups": ({"lr": 0.1},)}],
        "pair": Pair(torch.tensor(1.0), 0.5),
        "epoch": 3,
    }
    held = held_copy(checkpoint)
    weight.add_(1.0), moment.mul_(5.0), checkpoint["pair"].step.add_(1.0)
    assert type(held["state_dict"]) is OrderedDict and held["state_dict"]["w"].tolist() == [0.0, 0.0, 0.0]
    assert held["optimizer_states"][0]["state"][0]["exp_avg"].tolist() == [1.0, 1.0]
    assert held["optimizer_states"][0]["state"][0]["step"] == 7 and held["optimizer_states"][0]["groups"] == (
        {"lr": 0.1},
    )
    assert type(held["pair"]) is Pair and held["pair"].step.item() == 1.0 and held["pair"].lr == 0.5
    assert held["epoch"] == 3


def test_no_model_checkpoint_means_no_checkpoints(make_cfg):
    cfg = make_cfg("callbacks.model_checkpoint=null", "trainer.max_epochs=2")
    val_acc = train(cfg)
    assert not list(Path(cfg.paths.output_dir).rglob("*.ckpt"))  # Lightning added none of its own
    metrics = __import__("json").loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())
    assert metrics["ckpt/best"] is None and metrics["val/acc"] == val_acc > 0.8  # the final weights, scored


def test_checkpoint_writers_per_trainer_option(make_cfg):
    """On a CPU the writer streams on the training thread; trainer=gpu (and ddp) write on a background thread."""
    assert type(trainer_of(make_cfg()).strategy.checkpoint_io) is DirectCheckpointIO
    gpu = OmegaConf.to_container(make_cfg("trainer=gpu").trainer.plugins)
    assert gpu == [{"_target_": "hyperlab.training.checkpoints.BackgroundCheckpointIO"}]
    trainer = trainer_of(make_cfg("trainer.plugins=null"))
    assert not isinstance(trainer.strategy.checkpoint_io, (DirectCheckpointIO, BackgroundCheckpointIO))


@pytest.mark.parametrize("model", ["cnn", "resnet"])
def test_channels_last_computes_the_same_in_nhwc(model, make_cfg):
    torch.manual_seed(0)
    _, plain = build_module(make_cfg(f"model={model}"))
    torch.manual_seed(0)
    _, nhwc = build_module(make_cfg(f"model={model}", "model.channels_last=true"))
    conv = next(m for m in nhwc.net.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.randn(8, 1, 8, 8)
    plain.eval(), nhwc.eval()
    torch.testing.assert_close(nhwc(x), plain(x), rtol=1e-4, atol=1e-5)


def test_compile_true_compiles_the_network_and_only_with_it(make_cfg):
    _, eager = build_module(make_cfg())
    _, compiled = build_module(make_cfg("compile=true"))
    assert eager.net._compiled_call_impl is None and compiled.net._compiled_call_impl is not None


@pytest.mark.slow
def test_compile_trains_like_eager_on_the_cpu(make_cfg):
    """torch.compile of the network (inductor, gcc): the same losses within float tolerance; ~15 s to compile."""
    from torch._dynamo.utils import counters

    eager, _ = fitted_weights(make_cfg, "trainer.max_epochs=1")
    frames = counters["frames"]["ok"]
    compiled, trainer = fitted_weights(make_cfg, "trainer.max_epochs=1", "compile=true")
    assert trainer.lightning_module.net._compiled_call_impl is not None  # every nn.Module has the attribute: None
    assert counters["frames"]["ok"] > frames  # dynamo compiled the network's forward during the fit
    for name in eager:  # the same keys: compiling in place leaves the state_dict as it was
        torch.testing.assert_close(compiled[name], eager[name], rtol=1e-3, atol=1e-4)


def test_the_non_finite_guard_starts_its_window_at_the_fit_start():
    guard, trainer = StopOnNonFiniteLoss(), FakeTrainer(global_step=50)
    guard.on_train_start(trainer, None)  # a resumed fit, or the fit after the tuner's
    trainer.global_step = 53
    guard.on_train_batch_end(trainer, None, torch.tensor(float("nan")), None, 2)
    with pytest.raises(NonFiniteLossError, match="between step 51 and step 53"):
        guard.on_train_epoch_end(trainer, None)


def test_another_runs_last_checkpoint_in_the_folder_is_not_overwritten(make_cfg, tmp_path):
    folder = tmp_path / "shared"
    folder.mkdir()
    (folder / "last.ckpt").write_bytes(b"another run's")
    checkpoint_run(make_cfg, f"callbacks.model_checkpoint.dirpath={folder}")
    assert (folder / "last.ckpt").read_bytes() == b"another run's"
    assert torch.load(folder / "last-v1.ckpt", weights_only=True)["epoch"] == 3


def test_eval_batch_size_sets_the_validation_and_test_batches_only(make_cfg):
    datamodule, _ = build_module(make_cfg("data.eval_batch_size=100"))
    assert [len(x) for x, _ in datamodule.val_dataloader()] == [100, 80]  # 180 validation rows
    assert [len(x) for x, _ in datamodule.test_dataloader()] == [100, 100, 100, 60]
    assert {len(x) for x, _ in datamodule.train_dataloader()} == {64, 1257 - 19 * 64}
    default, _ = build_module(make_cfg())
    assert [len(x) for x, _ in default.val_dataloader()] == [180]  # 1024 by default: one batch


def test_the_bar_stops_without_waiting_for_its_refresh_threads_sleep(make_cfg, monkeypatch):
    """Lightning's bar joins its refresh thread at the end of fit, waiting out a sleep of 1/refresh_rate s; ours
    tells the thread it is done and does not wait for it (here: a 1000 s sleep that would hang a join)."""
    from lightning.pytorch.callbacks.progress import rich_progress

    threads = []
    monkeypatch.setattr(rich_progress._RefreshThread, "join", lambda self, *a: threads.append(self) or 1 / 0)
    cfg = make_cfg("trainer.max_epochs=1", "callbacks.rich_progress_bar.refresh_rate=0.001", "test=false")
    datamodule, module = build_module(cfg)
    trainer = trainer_of(cfg)
    trainer.fit(module, datamodule=datamodule)
    assert threads == [] and trainer.progress_bar_callback._progress_stopped


def test_the_bar_draws_on_its_refresh_thread_not_on_the_training_thread(make_cfg, monkeypatch):
    """rich redraws the whole bar on the calling thread when a task is added or reset (twice an epoch under
    Lightning's bar); ours leaves every frame to the refresh thread but the first (drawn by rich's start) and the
    last (drawn at stop)."""
    from rich.live import Live

    drawn_while_training = []
    refresh = Live.refresh

    def recording(live):
        if live.is_started and threading.current_thread() is threading.main_thread():
            drawn_while_training.append(1)
        return refresh(live)

    monkeypatch.setattr(Live, "refresh", recording)
    cfg = make_cfg("trainer.max_epochs=3", "callbacks.early_stopping=null", "test=false")
    datamodule, module = build_module(cfg)
    trainer = trainer_of(cfg)
    trainer.fit(module, datamodule=datamodule)
    assert trainer.current_epoch == 3 and trainer.progress_bar_callback._progress_stopped
    assert drawn_while_training == [1]  # the first frame; Lightning's bar: 7 more here


def test_the_bar_keeps_one_validation_task_however_many_epochs(make_cfg):
    """Lightning's bar adds a validation task per validation run and keeps them all (hidden); ours resets one, which
    still counts each run's batches and hides at its end."""
    cfg = make_cfg("trainer.max_epochs=4", "callbacks.early_stopping=null", "test=false")
    datamodule, module = build_module(cfg)
    trainer = trainer_of(cfg)
    bar, seen = trainer.progress_bar_callback, []
    end = bar.on_validation_epoch_end
    bar.on_validation_epoch_end = lambda trainer, module: (
        seen.append([(t.completed, t.total, t.visible) for t in bar.progress.tasks][1:]),
        end(trainer, module),
    )
    trainer.fit(module, datamodule=datamodule)
    validations = [run for run in seen if run]  # the sanity check's end sees no task but its own
    assert [run[-1] for run in validations] == [(1, 1, True)] * 4  # each run's one batch, shown
    assert [t.description for t in bar.progress.tasks[::2]] == ["Sanity Checking", "Validation"]
    assert len(bar.progress.tasks) == 3 and not bar.progress.tasks[-1].visible  # Lightning's: 6


def test_progress_bar_updates_every_n_batches_and_at_an_epochs_last(make_cfg):
    """The rich bar's per-batch update (count, metrics, redraw request) runs every n-th batch and at the last."""
    cfg = make_cfg(
        "trainer.max_epochs=2", "callbacks.rich_progress_bar.every_n_batches=7", "callbacks.early_stopping=null"
    )
    datamodule, module = build_module(cfg)
    trainer = trainer_of(cfg)
    bar, counts = trainer.progress_bar_callback, []
    update = bar._update
    bar._update = lambda task, current, *a, **k: (
        counts.append(current) if task == bar.train_progress_bar_id else None,
        update(task, current, *a, **k),
    )
    trainer.fit(module, datamodule=datamodule)
    assert trainer.num_training_batches == 20 and counts == [7, 14, 20] * 2
