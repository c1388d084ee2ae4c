"""Classical baselines beside a model selection: scikit-learn's tuned LogisticRegression, SVC and
HistGradientBoosting (Ridge, SVR and HistGradientBoosting for regression), scored exactly as the trials were; for
1-D signals (C, L) also the time-series field's references, aeon's MiniRocket and, for series up to DTW_LENGTH
steps, 1-NN DTW (the optional `timeseries` extra: without aeon, the report says how to add them).

Same rows: the data module of the search's config is built once as the refit sees it (train + val, the test
split) and once per fold; each fold's train and val rows are located in train + val by their row ids
(`TensorSplits.indices`), and those (train, val) pairs are GridSearchCV's `cv`. So every baseline is tuned by the
same k folds the trials were scored on, refit on train + val like the selected net, and tested once on the same
test rows. Features are the data module's own (a table's encoded columns, an image's pixels flattened) before
its standardisation, which the pipeline's StandardScaler repeats per fold on the fold's train rows.
"""

import copy
import statistics

import numpy as np
from omegaconf import DictConfig, open_dict

from hyperlab import console
from hyperlab.builders.module import build_datamodule
from hyperlab.contracts import TensorSplits

# objective (a val/* key) -> scikit-learn scorer; what the one-SE comparison needs is the same figure
SCORERS = {"acc": "accuracy", "f1": "f1_macro", "r2": "r2"}


# up to 200 boosting rounds, stopped when 10% of the fold's train rows stop improving: 10-class digits otherwise
# costs 7 s per setting on 2 cores
BOOSTING = {"max_iter": 200, "early_stopping": True, "random_state": 0}


DTW_LENGTH = 512  # 1-NN DTW costs train x test x length^2: ACSF1's 1460 steps would take hours on 2 cores


def as_series(x: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Flattened rows back to (N, C, L) series, as aeon's estimators take them."""
    return x.reshape(len(x), *shape)


def signal_estimators(shape: tuple[int, int]) -> dict:
    """The time-series references for (C, L) signals: name -> (pipeline, its grid), or {} without aeon."""
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
    if shape[1] <= DTW_LENGTH:
        found["1nn_dtw"] = (make_pipeline(series, KNeighborsTimeSeriesClassifier(n_neighbors=1, distance="dtw")), {})
    return found


def estimators(task: str) -> dict:
    """name -> (estimator, its small grid); every grid runs in seconds on a 2-core machine for a few thousand rows."""
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.svm import SVC, SVR

    if task == "regression":
        return {
            "ridge": (Ridge(), {"alpha": [0.1, 1.0, 10.0, 100.0]}),
            "svr": (SVR(), {"C": [0.1, 1.0, 10.0, 100.0]}),
            "hgb": (HistGradientBoostingRegressor(**BOOSTING), {"learning_rate": [0.1, 0.2]}),
        }
    return {
        "logreg": (LogisticRegression(max_iter=2000), {"C": [0.01, 0.1, 1.0, 10.0, 100.0]}),
        "svc": (SVC(), {"C": [0.1, 1.0, 10.0, 100.0], "gamma": ["scale", 0.01]}),
        "hgb": (HistGradientBoostingClassifier(**BOOSTING), {"learning_rate": [0.1, 0.2]}),
    }


def same_rows(data: DictConfig) -> dict:
    """Train + val and test as the refit sees them, and each fold's (train, val) positions within train + val."""
    whole = _module(data, fold=None, refit=True)
    position = {int(row): i for i, row in enumerate(whole.indices["train"])}
    num_folds = data.get("num_folds")
    folds = []
    for k in range(num_folds) if num_folds else [None]:  # no folds: the one val split the trials were scored on
        part = _module(data, fold=k, refit=False)
        folds.append(tuple(np.array([position[int(r)] for r in part.indices[s]]) for s in ("train", "val")))
    x, y = (t.numpy() for t in whole.splits["train"].tensors[:2])
    x_test, y_test = (t.numpy() for t in whole.splits["test"].tensors[:2])
    flat = lambda a: a.reshape(len(a), -1)  # noqa: E731  images and signals: one row of features each
    return {
        "x": flat(x),
        "y": y,
        "x_test": flat(x_test),
        "y_test": y_test,
        "folds": folds,
        "rows": {"train_val": whole.indices["train"], "test": whole.indices["test"]},
        "task": whole.task,
        "shape": tuple(whole.input_shape),
    }


def _module(data: DictConfig, fold: int | None, refit: bool) -> TensorSplits:
    data = copy.deepcopy(data)
    with open_dict(data):
        data.fold, data.refit, data.normalize = fold, refit, False
        if refit:
            data.num_folds = None
    module = build_datamodule(data, None)
    if not isinstance(module, TensorSplits):
        raise SystemExit("error: --baselines needs the rows in memory (not data.convert=true or token data)")
    return module


def score(data: DictConfig, metric: str) -> list[dict]:
    """One row per baseline: its CV mean and SE over the same folds, its best settings, and its test score."""
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    name = metric.removeprefix("val/")
    if not metric.startswith("val/") or name not in SCORERS:
        raise SystemExit(f"error: --baselines compares on {', '.join('val/' + k for k in SCORERS)}; not {metric}")
    rows = same_rows(data)
    candidates = {  # "library:name" -> (pipeline, its grid by step name)
        f"sklearn:{family}": (make_pipeline(StandardScaler(), estimator), _named(estimator, grid))
        for family, (estimator, grid) in estimators(rows["task"]).items()
    }
    if rows["task"] == "classification" and len(rows["shape"]) == 2:  # 1-D signals (C, L)
        candidates.update({f"aeon:{family}": found for family, found in signal_estimators(rows["shape"]).items()})
    results = []
    for job, (pipeline, grid) in candidates.items():
        search = GridSearchCV(pipeline, grid, scoring=SCORERS[name], cv=rows["folds"], n_jobs=-1)
        search.fit(rows["x"], rows["y"])
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
    return sorted(results, key=lambda r: r["metric"], reverse=True)


def _named(estimator, grid: dict) -> dict:
    """A grid as the pipeline's step names it: {"C": [...]} -> {"svc__C": [...]}."""
    return {f"{type(estimator).__name__.lower()}__{key}": values for key, values in grid.items()}


def verdict(baselines: list[dict], winner: dict, maximize: bool) -> str:
    """One plain line: whether a classical baseline beats the selected net by more than the net's standard error."""
    if not baselines:
        return ""
    best = (max if maximize else min)(baselines, key=lambda r: r["metric"])
    margin = (best["metric"] - winner["metric"]) * (1 if maximize else -1)
    yardstick = winner.get("metric_se") or 0.0
    figures = (
        f"{best['model']} {best['metric']:.4f} ± {_se(best)} vs the selected net's {winner['metric']:.4f} ± "
        f"{_se(winner)} (same folds)"
    )
    if margin > yardstick:
        return f"a classical baseline beats the selected net by more than one SE: {figures}; a net may not be warranted"
    return f"no classical baseline beats the selected net by more than one SE: best {figures}"


def _se(row: dict) -> str:
    return "-" if row.get("metric_se") is None else f"{row['metric_se']:.4f}"
