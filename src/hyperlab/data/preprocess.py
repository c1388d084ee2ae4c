"""Preprocessing of in-memory arrays, each step a small function over numpy arrays `(x, y)` (and row weights).

ArrayDataModule runs them in this order: `clean` and `make_imbalanced` on the whole table (so duplicates cannot
straddle splits), then the split, then `remove_outliers` and `resample` on the train split only (val and test
keep every row: a model is scored on the data as it comes), then standardisation and `smooth_images`.
"""

import numpy as np


def clean(x, y: np.ndarray, drop_nan_rows: bool, drop_duplicates: bool) -> np.ndarray:
    """Indices of the rows to keep: rows with a NaN anywhere (features or target), then repeated feature rows
    (the first one stays). `x` is an array, or a pandas frame of a table (data=table)."""
    keep = np.arange(len(x))
    if is_frame(x):
        if drop_nan_rows:
            keep = keep[~x.isna().any(axis=1).to_numpy()]
        return keep[~x.iloc[keep].duplicated().to_numpy()] if drop_duplicates else keep
    if drop_nan_rows:
        finite = ~np.isnan(x.reshape(len(x), -1)).any(1) & ~np.isnan(y.reshape(len(y), -1).astype(float)).any(1)
        keep = keep[finite]
    if drop_duplicates:
        _, first = np.unique(x[keep].reshape(len(keep), -1), axis=0, return_index=True)
        keep = keep[np.sort(first)]
    return keep


def is_frame(x) -> bool:
    return hasattr(x, "iloc")


def take(x, rows: np.ndarray):
    """Rows of an array or of a pandas frame."""
    return x.iloc[rows].reset_index(drop=True) if is_frame(x) else x[rows]


def encode(x, train: np.ndarray, make_encoder) -> np.ndarray:
    """Features as float32: a table's columns through `make_encoder(train rows)` (a scikit-learn transformer)
    fitted on the train split's rows only, then applied to every row."""
    if make_encoder is None:
        return x.to_numpy(dtype=np.float32) if is_frame(x) else x
    encoder = make_encoder(take(x, train))
    encoder.fit(take(x, train))
    return np.asarray(encoder.transform(x), dtype=np.float32)


def class_codes(y: np.ndarray, task: str) -> tuple[np.ndarray, list[str] | None]:
    """Class labels that are not integers (strings, e.g. "yes" / "no") as codes 0..k-1 in sorted order, with the
    names; numeric labels and regression targets pass through."""
    y = np.asarray(y)
    if task == "regression":
        if not np.issubdtype(y.dtype, np.number):
            example = next((v for v in y if not isinstance(v, (int, float))), y[0])
            raise ValueError(
                f"the target holds non-numbers (e.g. {example!r}) but data.task={task}: use "
                "data.task=classification, or a numeric target (data.target for data=table)"
            )
        return y, None
    if task != "classification":
        return y, None
    if len(np.unique(y)) == 1:  # torchmetrics would refuse num_classes=1 later, naming no key
        raise ValueError(
            f"data.target: a classification target needs 2 or more classes, but every row holds {y[0]!r}: "
            "choose another column, or data.task=regression for a number"
        )
    if np.issubdtype(y.dtype, np.number):
        return y, None
    names, codes = np.unique(np.asarray(y).astype(str), return_inverse=True)
    return codes, [str(n) for n in names]


def make_imbalanced(y: np.ndarray, ratio: float, seed: int) -> np.ndarray:
    """Indices of a long-tailed subset: class c (of k) keeps a fraction `ratio ** (c / (k - 1))` of its rows, so
    class 0 keeps all and the last class keeps `ratio` of them (imbalanced-learn's `make_imbalance` with that
    per-class count)."""
    from imblearn.datasets import make_imbalance

    classes, counts = np.unique(y, return_counts=True)
    wanted = {
        int(c): max(1, round(n * ratio ** (i / max(len(classes) - 1, 1))))
        for i, (c, n) in enumerate(zip(classes, counts, strict=True))
    }
    index = np.arange(len(y)).reshape(-1, 1)
    kept, _ = make_imbalance(index, y, sampling_strategy=wanted, random_state=seed)
    return np.sort(kept.ravel())


def remove_outliers(x: np.ndarray, method: str, fraction: float, seed: int) -> np.ndarray:
    """Indices of the rows an isolation forest fitted on these rows calls inliers (`fraction` = contamination);
    `method` is isolation_forest, the only one (data.outliers' rule)."""
    from sklearn.ensemble import IsolationForest

    forest = IsolationForest(contamination=fraction, random_state=seed)
    return np.flatnonzero(forest.fit_predict(x.reshape(len(x), -1)) == 1)


def resample(x: np.ndarray, y: np.ndarray, method: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Balance the classes of a (train) split with imbalanced-learn: random over- or under-sampling repeats or
    drops rows; SMOTE adds synthetic rows interpolated between same-class neighbours. ("weighted" only changes the
    order, in the sampler: not here.)"""
    from imblearn.over_sampling import SMOTE, RandomOverSampler
    from imblearn.under_sampling import RandomUnderSampler

    samplers = {"oversample": RandomOverSampler, "undersample": RandomUnderSampler, "smote": SMOTE}
    flat, y = samplers[method](random_state=seed).fit_resample(x.reshape(len(x), -1), y)
    return flat.reshape(-1, *x.shape[1:]), y


def smooth_images(x: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of each image over its two spatial axes (N, C, H, W): averages out pixel noise."""
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(x, sigma=(0, 0, sigma, sigma), mode="nearest")


def balanced_weights(y: np.ndarray) -> np.ndarray:
    """Per-row sampling weights that make every class equally likely (inverse class frequency)."""
    counts = np.bincount(y)
    return 1.0 / counts[y]
