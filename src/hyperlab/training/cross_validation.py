"""k-fold cross-validation of one config: every fold trained in `<run>/fold_k/`, then their statistics."""

import statistics
from collections.abc import Callable
from pathlib import Path

from omegaconf import DictConfig

from hyperlab import runs


def cross_validate(num_folds: int, output_dir: Path, train_fold: Callable[[int, Path], dict], trial=None) -> dict:
    """`data.num_folds=K` with no `data.fold`: `train_fold(k, <run>/fold_k)` for every k. The run's metrics.json
    holds each fold's metrics under `folds` and, for every val/* and test/* key, the mean over folds (under the
    key itself, so sweepers optimise the mean), the sample standard deviation (`<key>_std`) and the standard
    error of the mean (`<key>_se` = std / sqrt(K), the one-standard-error rule's yardstick). In a study, the
    running mean of the monitored metric is reported after each fold, so the pruner can stop a trial after its
    first folds (hyperlab.training.trial.FoldReports)."""
    reports = fold_reports(trial)
    folds = []
    for k in range(num_folds):
        (output_dir / f"fold_{k}").mkdir(parents=True, exist_ok=True)
        folds.append(train_fold(k, output_dir / f"fold_{k}"))
        if reports is not None:
            reports.report(folds)
    metrics = fold_statistics(folds)
    runs.write_metrics(output_dir, metrics)
    return metrics


def fold_statistics(folds: list[dict]) -> dict:
    """Mean, sample std and SE over folds of every val/* and test/* metric; the folds' own figures under `folds`."""
    num_folds = len(folds)
    scored = [key for key, value in folds[0].items() if key.startswith(("val/", "test/")) and value is not None]
    metrics = {key: statistics.fmean(f[key] for f in folds) for key in scored}
    metrics.update({f"{key}_std": statistics.stdev(f[key] for f in folds) for key in scored})
    metrics.update({f"{key}_se": metrics[f"{key}_std"] / num_folds**0.5 for key in scored})
    kept = [*scored, "ckpt/best", "trainer/global_step", "trainer/best_epoch", "trainer/epoch"]
    kept += ["data/train_rows", "data/val_rows"]
    metrics.update(
        {
            "folds": [{key: f[key] for key in kept} for f in folds],
            "data/num_folds": num_folds,
            "time/train_s": round(sum(f["time/train_s"] for f in folds), 3),
            "trainer/epochs": sum(f["trainer/epoch"] for f in folds),  # trained over all folds: a search's budget
            **{key: folds[0][key] for key in ("model/params", "model/flops", "versions", "python", "git", "command")},
            "memory/peak_mb": max(f["memory/peak_mb"] for f in folds),
            "data/test_rows": folds[0]["data/test_rows"],  # the test split is the same in every fold
        }
    )
    return metrics


def fold_reports(trial: DictConfig | None):
    """The study trial a cross-validated job reports its folds to, or None outside a study."""
    if not trial or trial.get("number") is None:
        return None
    from hyperlab.training.trial import FoldReports  # optuna loads only for sweeps

    return FoldReports(**trial)
