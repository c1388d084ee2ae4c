import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

import hyperlab.config  # noqa: F401  (registers the typed schema and resolvers, as train.py does)

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"

# Small, quick runs: 2 epochs of digits.
FAST = ["trainer.max_epochs=2"]


def compose_config(overrides: list[str], output_dir: Path, config_name: str = "train") -> DictConfig:
    """Compose like `python train.py OVERRIDES` would, with every path under `output_dir`."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name, overrides=overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)  # for ${hydra:...} interpolations
    with open_dict(cfg):
        cfg.paths.root_dir = str(ROOT)
        cfg.paths.log_dir = str(output_dir / "logs")
        cfg.paths.output_dir = str(output_dir)
        del cfg.hydra
    return cfg


@pytest.fixture
def make_cfg(tmp_path):
    def make(*overrides: str, fast: bool = True, output_dir: Path | None = None, config_name: str = "train"):
        extra = FAST if fast and config_name == "train" else []
        return compose_config([*extra, *overrides], output_dir or tmp_path, config_name)

    return make


def run_cli(script: str, *args: str, cwd: Path = ROOT, env: dict | None = None, timeout: int = 300):
    """Run `python SCRIPT ARGS` as a user would; returns the CompletedProcess."""
    return subprocess.run([sys.executable, str(ROOT / script), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})
