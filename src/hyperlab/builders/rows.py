"""A data config's rows as arrays for classical models (scikit-learn, aeon): train + val and test as the refit
sees them, each fold's (train, val) positions within train + val, found by row id (`RowSplits.indices`), so a
classical model is tuned on the very folds the trials were scored on and tested on the same test rows.
Features are the data module's own (a table's encoded columns, an image's pixels, a signal's steps) flattened one
row per sample, before its standardisation (a pipeline repeats it per fold). A streamed module (an image folder, a
converted table) is read into memory once here: classical models hold their rows, so a folder too big for that is
refused before anything is read."""

import copy
import math

import numpy as np
import torch
from omegaconf import DictConfig, open_dict
from torch.utils.data import DataLoader, Dataset, TensorDataset

from hyperlab.builders.module import build_datamodule
from hyperlab.contracts import RowSplits

MAX_BYTES = 4 * 2**30  # the float32 rows a classical baseline may hold: an SVC on more than this would not finish


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


def _arrays(module: RowSplits, split: str) -> tuple[np.ndarray, np.ndarray]:
    """A split's features, one flattened row per sample (images and signals too), and its targets."""
    data = module.splits[split]
    if isinstance(data, TensorDataset):
        x, y = (t.numpy() for t in data.tensors[:2])
    else:
        x, y = _read(data)
    return x.reshape(len(x), -1), y


def _read(data: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """A streamed split (decoded images, shard rows) read into arrays, 256 samples at a time."""
    batches = list(DataLoader(data, batch_size=256))
    x = torch.cat([b[0] for b in batches]).float().numpy() if batches else np.zeros((0, 0), np.float32)
    y = torch.cat([torch.as_tensor(b[1]) for b in batches]).numpy() if batches else np.zeros(0, np.int64)
    return x, y


def _module(data: DictConfig, fold: int | None, refit: bool) -> RowSplits:
    data = copy.deepcopy(data)
    with open_dict(data):
        data.fold, data.refit = fold, refit
        if "normalize" in data:  # the in-memory modules standardise; streamed ones normalise on the device
            data.normalize = False
        if refit:
            data.num_folds = None
    module = build_datamodule(data, None)
    if not isinstance(module, RowSplits):  # a token stream has windows, not rows
        raise SystemExit("error: baselines need rows (a table, images, signals), not token data")
    size = sum(len(part) for part in module.splits.values()) * math.prod(module.input_shape) * 4
    if size > MAX_BYTES:
        raise SystemExit(
            f"error: baselines would hold {size / 2**30:.1f} GiB of rows in memory (at most {MAX_BYTES / 2**30:.0f});"
            " hydra.sweeper.selection.baselines=false leaves them out"
        )
    return module


def as_series(x: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Flattened rows back to (N, C, L) series, as aeon's estimators take them."""
    return x.reshape(len(x), *shape)
