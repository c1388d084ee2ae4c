"""Search efficiency on digits: grid vs random vs TPE vs TPE + median pruning.

    python bench/search_efficiency.py [--epochs 8] [--seeds 10]

The space is the grid lr x model.width x optimizer (6 x 3 x 2 = 36 configurations, `--epochs` each). Every
configuration is first trained once through hyperlab's own `train()` (seed 42, early stopping off), recording
val/loss and val/acc after every epoch. Training is deterministic for a fixed seed (tested:
test_same_seed_same_metrics_and_another_seed_differs), so a searcher that picks a configuration gets exactly this
curve: the searchers then run as real Optuna studies (ask/tell, per-epoch `report`/`should_prune`, the samplers
and pruner of conf/hparams_search/tpe.yaml) over the recorded curves, many seeds in seconds.

A trial's objective is what `train()` returns for `optimized_metric=val/acc`: val/acc of the epoch with the
lowest val/loss (the checkpoint it scores). The target is the best objective of the full grid; the figure is the
epochs spent until a completed trial reaches it (pruned trials count the epochs they ran).
"""

import argparse
import csv
import itertools
import logging
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import optuna
from report import publish

from hyperlab.config.cli import compose
from hyperlab.train import train

SPACE = {"lr": [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2], "model.width": [16, 64, 256], "optimizer": ["adamw", "sgd"]}
warnings.filterwarnings("ignore")
logging.getLogger("lightning").setLevel(logging.ERROR)
optuna.logging.set_verbosity(optuna.logging.ERROR)


def record_curve(config: tuple, epochs: int) -> list[tuple[float, float]]:
    """(val/loss, val/acc) after each epoch of one real training run."""
    out = Path(tempfile.mkdtemp())
    overrides = [f"{key}={value}" for key, value in zip(SPACE, config, strict=True)]
    train(compose([*overrides, f"trainer.max_epochs={epochs}", "callbacks.early_stopping=null", "test=false"], out))
    with open(out / "csv" / "metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r.get("val/acc")]
    return [(float(r["val/loss"]), float(r["val/acc"])) for r in rows][:epochs]


def objective(curve: list[tuple[float, float]]) -> float:
    return min(curve)[1]  # val/acc at the lowest val/loss


def search(sampler, pruner, curves: dict, target: float, budget: int) -> int | None:
    """Epochs spent until a completed trial's objective reaches `target`; None if `budget` epochs do not."""
    study = optuna.create_study(direction="maximize", sampler=sampler, pruner=pruner)
    spent = 0
    while spent < budget:
        trial = study.ask()
        curve = curves[tuple(trial.suggest_categorical(key, values) for key, values in SPACE.items())]
        for epoch, (_, acc) in enumerate(curve):
            spent += 1
            trial.report(acc, step=epoch)  # what ReportToTrial reports: the monitored val/acc per epoch
            if trial.should_prune():
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                break
        else:
            study.tell(trial, objective(curve))
            if objective(curve) >= target:
                return spent
    return None


def searchers(seed: int) -> dict:
    """Samplers and pruner as conf/hparams_search/tpe.yaml configures them."""
    return {
        "grid": (optuna.samplers.GridSampler(SPACE, seed=seed), optuna.pruners.NopPruner()),
        "random": (optuna.samplers.RandomSampler(seed=seed), optuna.pruners.NopPruner()),
        "TPE": (optuna.samplers.TPESampler(seed=seed, n_startup_trials=5), optuna.pruners.NopPruner()),
        "TPE + pruning": (
            optuna.samplers.TPESampler(seed=seed, n_startup_trials=5),
            optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=2),
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seeds", type=int, default=10)
    args = parser.parse_args()
    start = time.perf_counter()
    curves = {config: record_curve(config, args.epochs) for config in itertools.product(*SPACE.values())}
    record_s = time.perf_counter() - start
    grid_epochs = len(curves) * args.epochs
    target = max(objective(c) for c in curves.values())
    winners = [c for c, curve in curves.items() if objective(curve) >= target]
    spent: dict[str, list[int | None]] = {name: [] for name in searchers(0)}
    for seed in range(args.seeds):
        for name, (sampler, pruner) in searchers(seed).items():
            spent[name].append(search(sampler, pruner, curves, target, budget=3 * grid_epochs))
    body = [
        f"{len(curves)} configurations x {args.epochs} epochs = **{grid_epochs} epochs for the full grid**, recorded "
        f"in {record_s:.0f} s. Target: val/acc {target:.4f}, reached by {len(winners)} configuration(s): "
        + "; ".join(", ".join(f"{k}={v}" for k, v in zip(SPACE, w, strict=True)) for w in winners)
        + f". {args.seeds} seeds per searcher, budget {3 * grid_epochs} epochs.",
        "",
        "| searcher | epochs to the grid's best, median | mean | reached | vs full grid |",
        "|---|---|---|---|---|",
    ]
    for name, runs in spent.items():
        reached = [r for r in runs if r is not None]
        median = statistics.median(r if r is not None else 3 * grid_epochs for r in runs)
        mean = statistics.fmean(reached) if reached else float("nan")
        body.append(f"| {name} | {median:.0f} | {mean:.0f} | {len(reached)}/{len(runs)} | {median / grid_epochs:.2f} |")
    body += ["", "Per seed: " + "; ".join(f"{name}: {runs}" for name, runs in spent.items())]
    publish("Search efficiency", "python bench/search_efficiency.py", body)


if __name__ == "__main__":
    main()
