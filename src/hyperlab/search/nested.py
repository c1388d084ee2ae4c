"""Nested cross-validation: the whole search (trials, selection, refit) once per outer fold, that fold the test
split; the outer folds' refit test scores estimate how good the whole procedure is, not one model."""

import json
import statistics
import subprocess
import sys
from pathlib import Path

from hyperlab import runs


def run_outer_folds(k: int, sweep_dir: Path, study_name: str) -> None:
    """This command, search + selection + refit, once per outer fold with that fold as the test split
    (data.outer_fold), each in `<sweep dir>/outer_<k>/` (a finished one is resumed, so it is not redone)."""
    ours = ("hydra.sweeper.nested_folds=", "hydra.sweeper.study_name=", "hydra.sweep.dir=", "data.outer_fold")
    argv = [arg for arg in sys.argv if not arg.startswith(ours)]
    for fold in range(k):
        command = [
            sys.executable,
            *argv,
            "hydra.sweeper.nested_folds=null",
            f"hydra.sweeper.study_name={study_name}_outer{fold}",
            f"hydra.sweep.dir={sweep_dir / f'outer_{fold}'}",
            f"data.outer_folds={k}",
            f"data.outer_fold={fold}",
        ]
        if subprocess.run(command).returncode != 0:
            raise SystemExit(f"error: outer fold {fold} of the nested cross-validation failed: {' '.join(command)}")


def summary(sweep_dir: Path, outer_folds: int) -> str:
    """Nested CV's result (`nested.json`): each outer fold's refit test scores, their mean and sample std."""
    outer = [runs.read_metrics(sweep_dir / f"outer_{k}" / "selected") for k in range(outer_folds)]
    test = runs.test_key(outer[0]["search/objective"])
    scores = [m[test] for m in outer]
    mean, std = statistics.fmean(scores), statistics.stdev(scores)
    result = {
        "metric": test,
        "mean": mean,
        "std": std,
        "outer": [
            {"fold": k, test: m[test], "search": m["search/metric"], "trial": m["refit/trial"]}
            for k, m in enumerate(outer)
        ],
    }
    (sweep_dir / "nested.json").write_text(json.dumps(result, indent=2))
    return (
        f"Nested cross-validation over {outer_folds} outer folds: {test} {mean:.4f} ± {std:.4f} (std)\n"
        f"  the estimate of the whole procedure (search, selection, refit); per fold in {sweep_dir / 'nested.json'}"
    )
