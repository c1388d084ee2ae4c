import os
import subprocess
import sys
from pathlib import Path

import pytest

from hyperlab.config.cli import compose  # also registers the typed schema and resolvers, as train.py does

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"

# pytest-xdist (`make test` runs one worker per core): each worker's torch takes its share of the cores, not all
WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if WORKERS > 1:
    import torch

    torch.set_num_threads(max(1, (os.cpu_count() or 1) // WORKERS))

# What `make test` runs (the Makefile's marker expression, held equal by tests/test_fork.py)
FAST_TIER = "not slow and not ddp and not postgres and not fault and not gpu"

# Small, quick runs: 2 epochs of digits.
FAST = ["trainer.max_epochs=2"]


@pytest.fixture
def make_cfg(tmp_path):
    def make(*overrides: str, fast: bool = True, output_dir: Path | None = None, config_name: str = "train"):
        extra = FAST if fast and config_name == "train" else []
        return compose([*extra, *overrides], output_dir or tmp_path, config_name)

    return make


def run_cli(script: str, *args: str, cwd: Path = ROOT, env: dict | None = None, timeout: int = 300):
    """Run `python SCRIPT ARGS` as a user would; returns the CompletedProcess."""
    return subprocess.run(
        [sys.executable, str(ROOT / script), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def trainer_of(cfg, config: dict | None = None):
    """The Trainer train_once builds for `cfg` (its configured callbacks and loggers, and hyperlab's own)."""
    from hyperlab.builders import build_trainer, run_callbacks

    ours = run_callbacks(config or {}, cfg.optimized_metric, cfg.finetune, cfg.trial)
    return build_trainer(cfg.trainer, cfg.callbacks, cfg.logger, ours)


def own_data(option: str, tmp_path: Path) -> list[str]:
    """The overrides that point data=table or data=images at files the test makes (none for bundled data)."""
    if option == "table":
        from tests.test_table import churn, write

        return [f"data.path={write(churn(), tmp_path / 'table.csv')}", "data.target=label"]
    if option == "images":
        from tests.test_images import draw_folder

        return [f"data.path={draw_folder(tmp_path / 'shapes', per_class=10)}", "data.num_workers=0", "model=cnn"]
    return []
