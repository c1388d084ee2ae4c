"""The run-output contract that sweeps, reports and users rely on.

A run directory holds Hydra's `.hydra/` files, `checkpoints/`, the loggers' files and `metrics.json`
(final val/test metrics, `trainer/global_step`, `time/train_s`, `model/params`, and provenance: package
versions, git commit and dirty flag, the command line). Checkpoints carry the run's resolved config under
`hyperlab_config`, so `eval.py` rebuilds the model without the user retyping overrides.
"""

import functools
import json
import math
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import yaml

CONFIG_KEY = "hyperlab_config"
PACKAGES = ("hyperlab", "torch", "lightning", "torchmetrics", "hydra-core", "omegaconf", "scikit-learn", "numpy")


@functools.cache
def provenance(root: Path) -> dict:
    """What it takes to reproduce the run months later: versions, commit, dirty tree, command line. Read once per
    process: the code a process runs is what it imported at its start, and a search's folds would otherwise run
    two git commands each (bench/fit_overhead.py). Callers copy the dict into their metrics."""

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    status = git("status", "--porcelain", "--untracked-files=no")
    return {
        "versions": versions,
        "python": sys.version.split()[0],
        "git": {"commit": git("rev-parse", "HEAD"), "dirty": None if status is None else bool(status)},
        "command": [Path(sys.argv[0]).name, *sys.argv[1:]],
    }


def write_metrics(output_dir: Path, metrics: dict) -> Path:
    """Write metrics.json; NaN/inf become null so that every JSON reader accepts the file."""
    clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in metrics.items()}
    path = Path(output_dir) / "metrics.json"
    path.write_text(json.dumps(clean, indent=2, sort_keys=True) + "\n")
    return path


def test_key(metric: str) -> str:
    """The test split's key of a validation metric: val/acc -> test/acc."""
    return "test/" + metric.split("/", 1)[1]


def read_metrics(run_dir: Path) -> dict:
    return json.loads((Path(run_dir) / "metrics.json").read_text())


def _overrides(run_dir: Path) -> list[str] | None:
    path = run_dir / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return None
    return sorted(o for o in yaml.safe_load(path.read_text()) or [] if not o.startswith(("resume=", "ckpt_path=")))


def find_resume_checkpoint(output_dir: Path) -> Path | None:
    """For resume=auto: the newest `last.ckpt` among the sibling run directories that were started with the
    same command-line overrides as this one (apart from resume/ckpt_path)."""
    output_dir = Path(output_dir)
    wanted = _overrides(output_dir)
    candidates = [
        ckpt
        for ckpt in output_dir.parent.glob("*/checkpoints/last.ckpt")
        if ckpt.parents[1] != output_dir and _overrides(ckpt.parents[1]) == wanted
    ]
    return max(candidates, key=lambda p: p.stat().st_mtime, default=None)
