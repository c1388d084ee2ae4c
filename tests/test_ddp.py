"""2-process CPU DDP (gloo) through the real command line."""

import json

import pytest
import torch

from tests.conftest import run_cli


@pytest.mark.ddp
def test_ddp_sim_splits_each_epoch_across_two_ranks(tmp_path):
    result = run_cli("train.py", "trainer=ddp_sim", "trainer.max_epochs=2", f"paths.log_dir={tmp_path}")
    assert result.returncode == 0, result.stderr[-3000:]
    (run_dir,) = (tmp_path / "train" / "runs").iterdir()  # the second rank writes into the same run dir
    metrics = json.loads((run_dir / "metrics.json").read_text())
    # each rank sees half of the 1257 training rows per epoch: 10 steps of 64, where one process takes 20
    assert metrics["trainer/global_step"] == 20
    assert metrics["test/acc"] > 0.8
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == 20


@pytest.mark.ddp
def test_ddp_inside_a_multirun_runs_each_job_once_with_two_ranks(tmp_path):
    result = run_cli(
        "train.py",
        "-m",
        "trainer=ddp_sim",
        "lr=1e-3,3e-4",
        "trainer.max_epochs=1",
        "callbacks=none",
        f"paths.log_dir={tmp_path}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert [p.name for p in (tmp_path / "train").iterdir()] == ["multiruns"]  # no child wrote a run of its own
    (sweep,) = (tmp_path / "train" / "multiruns").iterdir()
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert [p.name for p in jobs] == ["0", "1"]
    for job in jobs:  # 10 steps: each of the 2 ranks took half of the epoch
        assert json.loads((job / "metrics.json").read_text())["trainer/global_step"] == 10
    log = result.stdout + result.stderr + "".join(path.read_text() for path in sweep.rglob("*.log"))
    assert log.count("[rank: 1] Seed set to 42") == 2  # one child per job, not a sweep per child


@pytest.mark.ddp
def test_ddp_inside_a_study_gives_every_rank_the_trial_parameters(tmp_path):
    """Ranks with different widths would fail DDP's shape check: the study finishes only if both ranks agree."""
    from tests.test_study import sweep, trials

    result = sweep(tmp_path, "trainer=ddp_sim", "hydra.sweeper.n_trials=2", params="      model.width: choice(8, 64)")
    assert result.returncode == 0, result.stderr[-3000:]
    done = trials(tmp_path)
    assert [t.state.name for t in done] == ["COMPLETE", "COMPLETE"]
    assert sorted(p.name for p in (tmp_path / "logs" / "study").iterdir() if p.is_dir()) == ["0", "1"]


@pytest.mark.ddp
def test_ddp_sim_splits_an_image_folder_across_two_ranks(tmp_path):
    from tests.test_images import draw_folder

    folder = draw_folder(tmp_path / "shapes")  # 90 images: 62 train rows, 4 steps of 16 in one process
    overrides = [f"data.path={folder}", "data.num_workers=1", "batch_size=16", "model=cnn"]
    result = run_cli(
        "train.py",
        "trainer=ddp_sim",
        "data=images",
        *overrides,
        "trainer.max_epochs=2",
        f"paths.log_dir={tmp_path / 'logs'}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (run_dir,) = (tmp_path / "logs" / "train" / "runs").iterdir()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["trainer/global_step"] == 2 * 2  # 31 rows a rank: 2 steps of 16 an epoch, not 4
