"""A data config's rows as arrays for classical models (scikit-learn, aeon): train + val and test as the refit
sees them, each fold's (train, val) positions within train + val, found by row id (`TensorSplits.indices`), so a
classical model is tuned on the very folds the trials were scored on and tested on the same test rows.
Features are the data module's own (a table's encoded columns, an image's pixels, a signal's steps) flattened one
row per sample, before its standardisation (a pipeline repeats it per fold)."""

import copy

import numpy as np
from omegaconf import DictConfig, open_dict

from hyperlab.builders.module import build_datamodule
from hyperlab.contracts import TensorSplits


def same_rows(data: DictConfig) -> dict:
    """Train + val and test as the refit sees them, and each fold's (train, val) positions within train + val."""
    whole = _module(data, fold=None, refit=True)
    position = {int(row): i for i, row in enumerate(whole.indices["train"])}
    num_folds = data.get("num_folds")
    folds = []
    for k in range(num_folds) if num_folds else [None]:  # no folds: the one val split the trials were scored on
        part = _module(data, fold=k, refit=False)
        folds.append(tuple(np.array([position[int(r)] for r in part.indices[s]]) for s in ("train", "val")))
    x, y = _arrays(whole, "train")
    x_test, y_test = _arrays(whole, "test")
    return {
        "x": x,
        "y": y,
        "x_test": x_test,
        "y_test": y_test,
        "folds": folds,
        "rows": {"train_val": whole.indices["train"], "test": whole.indices["test"]},
        "task": whole.task,
        "shape": tuple(whole.input_shape),
    }


def test_rows(data: DictConfig) -> dict:
    """The test split as a classical model is scored on it: flattened features, label codes, row ids, class names."""
    whole = _module(data, fold=None, refit=True)
    x, y = _arrays(whole, "test")
    return {
        "x": x,
        "y": y,
        "rows": whole.indices["test"],
        "names": getattr(whole, "class_names", None),
        "num_classes": whole.num_classes,
    }


def _arrays(module: TensorSplits, split: str) -> tuple[np.ndarray, np.ndarray]:
    """A split's features, one flattened row per sample (images and signals too), and its targets."""
    x, y = (t.numpy() for t in module.splits[split].tensors[:2])
    return x.reshape(len(x), -1), y


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


def as_series(x: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Flattened rows back to (N, C, L) series, as aeon's estimators take them."""
    return x.reshape(len(x), *shape)
