"""Classical baselines beside a model selection: scikit-learn's tuned LogisticRegression, SVC and
HistGradientBoosting (Ridge, SVR and HistGradientBoosting for regression), scored exactly as the trials were; for
1-D signals (C, L) also the time-series field's references, aeon's MiniRocket and, where its cost stays under
DTW_CELLS, 1-NN DTW (the optional `timeseries` extra: without aeon, the report says how to add them).

Same rows: the data module of the search's config is built once as the refit sees it (train + val, the test
split) and once per fold; each fold's train and val rows are located in train + val by their row ids
(`TensorSplits.indices`), and those (train, val) pairs are GridSearchCV's `cv`. So every baseline is tuned by the
same k folds the trials were scored on, refit on train + val like the selected net, and tested once on the same
test rows. Features are the data module's own (a table's encoded columns, an image's pixels flattened) before
its standardisation, which the pipeline's StandardScaler repeats per fold on the fold's train rows.
"""

import statistics
from pathlib import Path

from omegaconf import DictConfig

from hyperlab import console
from hyperlab.builders.rows import as_series, same_rows

# objective (a val/* key) -> scikit-learn scorer; what the one-SE comparison needs is the same figure
SCORERS = {"acc": "accuracy", "f1": "f1_macro", "r2": "r2"}


# up to 200 boosting rounds, stopped when 10% of the fold's train rows stop improving: 10-class digits otherwise
# costs 7 s per setting on 2 cores. That 10% is split off by class: below 2 rows a class (ACSF1's 67-row folds of
# 10 classes), scikit-learn refuses the split, and all 200 rounds run instead (seconds on so few rows)
BOOSTING = {"max_iter": 200, "early_stopping": True, "random_state": 0}
HELD_OUT = 0.1  # scikit-learn's validation_fraction
# Boosting's grid is its trees' size and its regulariser, the two that matter most at a fixed learning rate: on
# bench/table_compete.py's churn the learning rate grid (0.1, 0.2) reached CV 0.802, this one 0.819, as a 16-point
# grid over both and the learning rate did (2026-12-05)
BOOSTING_GRID = {"max_leaf_nodes": [7, 31], "l2_regularization": [0.0, 1.0]}


# 1-NN DTW (full window) fills a length x length table per pair of series: about rows x (rows + test rows) x
# length^2 cells over the folds and the test. ACSF1 (100 + 100 series of 1460 steps: 4.3e10) scores its test split
# in 130 s on 2 cores (2026-12-06); MNIST-1D (4000 + 1000 of 40 steps) is 3.2e10
DTW_CELLS = 5e10


def signal_estimators(shape: tuple[int, int], rows: int = 0, test_rows: int = 0) -> dict:
    """The time-series references for (C, L) signals: name -> (pipeline, its grid), or {} without aeon; 1-NN DTW
    only where `rows` series (train + val) and `test_rows` keep its tables under DTW_CELLS."""
    try:
        from aeon.classification.convolution_based import MiniRocketClassifier
        from aeon.classification.distance_based import KNeighborsTimeSeriesClassifier
    except ImportError:
        console.say("note: the signal baselines (MiniRocket, 1-NN DTW) need aeon: pip install -e '.[timeseries]'")
        return {}
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    series = FunctionTransformer(as_series, kw_args={"shape": tuple(shape)})
    found = {"minirocket": (make_pipeline(series, MiniRocketClassifier(random_state=0)), {})}
    if shape[1] ** 2 * rows * (rows + test_rows) <= DTW_CELLS:
        found["1nn_dtw"] = (make_pipeline(series, KNeighborsTimeSeriesClassifier(n_neighbors=1, distance="dtw")), {})
    return found


def estimators(task: str, train_rows: int | None = None, classes: int = 0) -> dict:
    """name -> (estimator, its small grid); every grid runs in seconds on a 2-core machine for a few thousand rows.
    `train_rows`, `classes`: the smallest fold's train rows and the class count, for boosting's early stopping."""
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.svm import SVC, SVR

    stops = train_rows is None or int(HELD_OUT * train_rows) >= 2 * classes
    boosting = {**BOOSTING, "early_stopping": stops}
    if task == "regression":
        return {
            "ridge": (Ridge(), {"alpha": [0.1, 1.0, 10.0, 100.0]}),
            "svr": (SVR(), {"C": [0.1, 1.0, 10.0, 100.0]}),
            "hgb": (HistGradientBoostingRegressor(**boosting), BOOSTING_GRID),
        }
    return {
        "logreg": (LogisticRegression(max_iter=2000), {"C": [0.01, 0.1, 1.0, 10.0, 100.0]}),
        "svc": (SVC(), {"C": [0.1, 1.0, 10.0, 100.0], "gamma": ["scale", 0.01]}),
        "hgb": (HistGradientBoostingClassifier(**boosting), BOOSTING_GRID),
    }


def score(data: DictConfig, metric: str, keep: Path | None = None) -> list[dict]:
    """One row per baseline: its CV mean and SE over the same folds, its best settings, and its test score. With
    `keep`, each baseline's pipeline refit on train + val is stored there without pickle (`<library>-<name>.skops`:
    what hydra.sweeper.selection.baselines=compete selects)."""
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    name = metric.removeprefix("val/")
    if not metric.startswith("val/") or name not in SCORERS:
        raise SystemExit(f"error: --baselines compares on {', '.join('val/' + k for k in SCORERS)}; not {metric}")
    rows = same_rows(data)
    train_rows = min(len(train) for train, _ in rows["folds"])
    classes = len(set(rows["y"].tolist())) if rows["task"] == "classification" else 0
    candidates = {  # "library:name" -> (pipeline, its grid by step name)
        f"sklearn:{family}": (make_pipeline(StandardScaler(), estimator), _named(estimator, grid))
        for family, (estimator, grid) in estimators(rows["task"], train_rows, classes).items()
    }
    if rows["task"] == "classification" and len(rows["shape"]) == 2:  # 1-D signals (C, L)
        candidates.update(
            {
                f"aeon:{family}": found
                for family, found in signal_estimators(rows["shape"], len(rows["y"]), len(rows["y_test"])).items()
            }
        )
    results = []
    for job, (pipeline, grid) in candidates.items():
        search = GridSearchCV(pipeline, grid, scoring=SCORERS[name], cv=rows["folds"], n_jobs=-1)
        try:
            search.fit(rows["x"], rows["y"])
        except ValueError as error:  # every fit failed: the others, the report and the refit still go on
            reason = next((line for line in str(error).splitlines()[::-1] if line.strip()), "")
            console.say(f"note: the baseline {job} failed on these rows and is left out: {reason}")
            continue
        splits = [search.cv_results_[f"split{k}_test_score"][search.best_index_] for k in range(len(rows["folds"]))]
        se = statistics.stdev(splits) / len(splits) ** 0.5 if len(splits) > 1 else None
        results.append(
            {
                "job": job,
                "state": "baseline",
                "metric": float(search.best_score_),
                "metric_se": se,
                "folds": len(splits) if len(splits) > 1 else None,
                "model": job.partition(":")[2],
                "test_metric": float(search.score(rows["x_test"], rows["y_test"])),
                "overrides": [f"{k.partition('__')[2]}={v}" for k, v in search.best_params_.items()],
            }
        )
        if keep is not None:
            import skops.io

            keep.mkdir(parents=True, exist_ok=True)
            skops.io.dump(search.best_estimator_, keep / f"{job.replace(':', '-')}.skops")
    return sorted(results, key=lambda r: r["metric"], reverse=True)


def _named(estimator, grid: dict) -> dict:
    """A grid as the pipeline's step names it: {"C": [...]} -> {"svc__C": [...]}."""
    return {f"{type(estimator).__name__.lower()}__{key}": values for key, values in grid.items()}


def beating(baselines: list[dict], winner: dict, maximize: bool) -> dict | None:
    """The best baseline if it beats the selected net's CV mean by more than the net's standard error, else None."""
    if not baselines:
        return None
    best = (max if maximize else min)(baselines, key=lambda r: r["metric"])
    margin = (best["metric"] - winner["metric"]) * (1 if maximize else -1)
    return best if margin > (winner.get("metric_se") or 0.0) else None


def verdict(baselines: list[dict], winner: dict, maximize: bool) -> str:
    """One plain line: whether a classical baseline beats the selected net by more than the net's standard error."""
    if not baselines:
        return ""
    best = (max if maximize else min)(baselines, key=lambda r: r["metric"])
    figures = (
        f"{best['model']} {best['metric']:.4f} ± {_se(best)} vs the selected net's {winner['metric']:.4f} ± "
        f"{_se(winner)} (same folds)"
    )
    if beating(baselines, winner, maximize):
        return f"a classical baseline beats the selected net by more than one SE: {figures}; a net may not be warranted"
    return f"no classical baseline beats the selected net by more than one SE: best {figures}"


def _se(row: dict) -> str:
    return "-" if row.get("metric_se") is None else f"{row['metric_se']:.4f}"
