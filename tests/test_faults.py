"""Fault injection with real processes: NaN losses, a crash inside a checkpoint write, kill -9 and resume."""

import json
import signal
import subprocess
import sys
import time

import pytest
import torch

from hyperlab.train import train
from hyperlab.training.callbacks import NonFiniteLossError
from tests.conftest import ROOT, run_cli

# lr * 1.3^step: finite through epoch 0, NaN at step 35 (epoch 1) on the default seed; the guard reads its flag
# every log_every_n_steps=10 steps, so it names steps 31-40
DIVERGE = [
    "scheduler=exponential",
    "scheduler.gamma=1.3",
    "optimizer=sgd",
    "trainer.max_epochs=6",
    "callbacks.early_stopping=null",
]


@pytest.mark.fault
def test_a_nan_loss_stops_at_its_step_and_keeps_the_last_good_checkpoint(make_cfg):
    cfg = make_cfg(*DIVERGE, fast=False)
    with pytest.raises(
        NonFiniteLossError, match=r"train loss became nan or inf between step 31 and step 40 \(epoch 1\)"
    ):
        train(cfg)
    last = torch.load(f"{cfg.paths.output_dir}/checkpoints/last.ckpt", weights_only=True)
    assert last["epoch"] == 0 and all(torch.isfinite(t).all() for t in last["state_dict"].values())


@pytest.mark.fault
def test_a_nan_loss_is_one_line_at_the_command_line(tmp_path):
    result = run_cli("train.py", *DIVERGE, f"paths.log_dir={tmp_path}")
    assert result.returncode == 1
    assert (
        "error: train loss became nan or inf between step 31 and step 40 (epoch 1); training stopped." in result.stderr
    )
    assert "Traceback" not in result.stderr


@pytest.mark.fault
def test_a_crash_in_the_middle_of_a_checkpoint_write_leaves_the_previous_file_intact(tmp_path, monkeypatch):
    """hyperlab's checkpoint writer streams into a temporary file and renames it into place."""
    import builtins

    from hyperlab.training.checkpoints import DirectCheckpointIO

    path = tmp_path / "last.ckpt"
    writer = DirectCheckpointIO()
    writer.save_checkpoint({"step": 1, "w": torch.ones(100_000)}, path)
    real_open = builtins.open

    class DiesHalfway:
        def __init__(self, file):
            self.file, self.written = file, 0

        def write(self, data):
            self.written += len(data)
            if self.written > 200_000:  # about half of the 400 kB tensor
                raise OSError("killed mid-write")
            return self.file.write(data)

        def __getattr__(self, name):
            return getattr(self.file, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.file.close()

    monkeypatch.setattr(builtins, "open", lambda f, mode="r", *a, **k: DiesHalfway(real_open(f, mode, *a, **k)))
    with pytest.raises((OSError, RuntimeError)):  # torch's zip writer may report the broken stream itself
        writer.save_checkpoint({"step": 2, "w": torch.zeros(100_000)}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]  # no truncated file left beside it


def kill_9_arguments(data: str, tmp_path) -> list[str]:
    """In-memory digits (a wide MLP), or an image folder decoded in 2 worker processes (a CNN): checkpoints at
    every epoch's end, which is the cadence both resume exactly from (the epoch's order depends on its number);
    digits-held: the same saves held in memory and written every 0.5 s (a few epochs apart)."""
    cadence = "0.5" if data == "digits-held" else "0"
    common = [
        "trainer.max_epochs=8",
        "model.dropout=0.2",
        "callbacks.early_stopping=null",
        f"callbacks.model_checkpoint.write_every_s={cadence}",
    ]
    if data.startswith("digits"):
        return [*common, "model.width=1024", "callbacks.rich_progress_bar=null"]
    from tests.test_images import draw_folder

    folder = draw_folder(tmp_path / "shapes", per_class=200)
    images = [f"data.path={folder}", "data.num_workers=2", "batch_size=16", f"data.cache_dir={tmp_path / 'c'}"]
    return [*common, "data=images", "model=cnn", *images, "callbacks.rich_progress_bar=null"]


@pytest.mark.fault
@pytest.mark.parametrize("data", ["digits", "digits-held", "images"])
def test_kill_9_mid_training_then_resume_auto_ends_like_an_unbroken_run(tmp_path, data):
    args = kill_9_arguments(data, tmp_path)
    unbroken = run_cli("train.py", *args, f"paths.log_dir={tmp_path / 'unbroken'}")
    assert unbroken.returncode == 0, unbroken.stderr[-2000:]
    log_dir = tmp_path / "killed"
    worker = subprocess.Popen(
        [sys.executable, "train.py", *args, f"paths.log_dir={log_dir}"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    first_file = "last.ckpt" if data == "digits-held" else "epoch_002.ckpt"  # held: the first timed write
    while time.monotonic() < deadline and not list(log_dir.glob(f"train/runs/*/checkpoints/{first_file}")):
        time.sleep(0.02)  # epoch 3's best file appears only while val/loss keeps falling; last.ckpt when written
    while time.monotonic() < deadline and not list(log_dir.glob("train/runs/*/csv/metrics.csv")):
        time.sleep(0.02)
    time.sleep(0.3)  # into the next epoch
    worker.send_signal(signal.SIGKILL)
    assert worker.wait() == -signal.SIGKILL
    (killed_run,) = (log_dir / "train" / "runs").iterdir()
    assert not (killed_run / "metrics.json").exists()
    resumed = run_cli("train.py", *args, f"paths.log_dir={log_dir}", "resume=auto")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    (unbroken_run,) = (tmp_path / "unbroken" / "train" / "runs").iterdir()
    expected = json.loads((unbroken_run / "metrics.json").read_text())
    latest = max((log_dir / "train" / "runs").iterdir())
    got = json.loads((latest / "metrics.json").read_text())
    assert got["ckpt/resumed_from"] == str(killed_run / "checkpoints" / "last.ckpt")
    for key in ("trainer/global_step", "val/loss", "val/acc", "test/loss", "test/acc"):
        assert got[key] == expected[key], key
