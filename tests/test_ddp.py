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
