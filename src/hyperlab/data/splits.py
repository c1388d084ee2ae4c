"""Which rows train, validate and test: a stratified random split or the split a dataset comes with, k-fold
cross-validation over train + val, the refit's train + val, and nested cross-validation's outer folds. Row indices
only; the arrays stay where they are."""

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import KFold, StratifiedKFold, train_test_split


@dataclass(frozen=True)
class Split:
    """The split knobs of conf/data/common/arrays.yaml (their meaning is written there)."""

    val_fraction: float = 0.1
    test_fraction: float = 0.2
    stratify: bool = True
    split_seed: int = 0
    num_folds: int | None = None
    fold: int | None = None
    refit: bool = False
    outer_folds: int | None = None
    outer_fold: int | None = None


GIVEN = ("train", "val", "test")  # the codes of `given`: 0 train, 1 val, 2 test


def split_rows(
    y: np.ndarray, split: Split, contiguous: bool = False, given: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Row indices of train, val and test for targets `y`. `contiguous`: consecutive text (language-model windows),
    train first, then val, then test: a random split would score on text the model trained on. `given`: per row,
    the split the dataset assigns it (0 train, 1 val, 2 test; see `given_split`)."""
    if given is not None:
        splits = _given(y, split, given, contiguous)
    elif split.outer_folds:
        splits = _outer_fold(y, split, np.arange(len(y)))
    else:
        splits = _train_val_test(y, split, contiguous)
    if split.refit:  # the model selection's final fit: train + val as one train split, val empty
        train = np.sort(np.concatenate([splits["train"], splits["val"]]))
        return {"train": train, "val": train[:0], "test": splits["test"]}
    if not split.num_folds:
        return splits
    # k-fold over train + val; the test split stays the one plain runs use, so scores are comparable
    pool = np.sort(np.concatenate([splits["train"], splits["val"]]))
    kfold = StratifiedKFold if split.stratify else KFold
    folds = kfold(n_splits=split.num_folds, shuffle=True, random_state=split.split_seed).split(pool, y[pool])
    train, val = list(folds)[split.fold]
    return {"train": pool[train], "val": pool[val], "test": splits["test"]}


def _given(y: np.ndarray, split: Split, given: np.ndarray, contiguous: bool) -> dict[str, np.ndarray]:
    """The dataset's own split: its test rows stay the test split, row for row; without val rows, val is
    `val_fraction` of the given train rows, drawn as a plain split draws it. Nested CV's outer folds partition the
    rows not given as test (the given test split is then the final refit's alone)."""
    if split.outer_folds:
        return _outer_fold(y, split, np.flatnonzero(given != 2))
    train, val, test = (np.flatnonzero(given == code) for code in range(3))
    if len(val) == 0 and split.val_fraction > 0:
        order = {"shuffle": False} if contiguous else {"random_state": split.split_seed}
        stratify = y[train] if split.stratify else None
        train, val = train_test_split(train, test_size=split.val_fraction, stratify=stratify, **order)
    return {"train": train, "val": val, "test": test}


def _outer_fold(y: np.ndarray, split: Split, rows: np.ndarray) -> dict[str, np.ndarray]:
    """Nested cross-validation's outer loop over `rows`: test is fold `outer_fold` of a (stratified) k-fold split,
    so the k test splits partition those rows; val is `val_fraction` of them, drawn from the rest."""
    kfold = StratifiedKFold if split.stratify else KFold
    folds = kfold(n_splits=split.outer_folds, shuffle=True, random_state=split.split_seed).split(rows, y[rows])
    rest, test = (rows[part] for part in list(folds)[split.outer_fold])
    train, val = train_test_split(
        rest,
        test_size=split.val_fraction * len(rows) / len(rest),
        stratify=y[rest] if split.stratify else None,
        random_state=split.split_seed,
    )
    return {"train": train, "val": val, "test": test}


def given_split(loaded) -> tuple[list[np.ndarray], np.ndarray | None]:
    """What a `load` function returned, as one table: `(X, y[, w])` arrays, or a mapping of the dataset's own
    splits, {"train": (X, y[, w]), "test": (...), optionally "val": (...)}, concatenated in that order with the
    split code of every row (0 train, 1 val, 2 test; None for plain arrays)."""
    if not isinstance(loaded, Mapping):
        return [_array(a) for a in loaded], None
    unknown = sorted(set(loaded) - set(GIVEN))
    if unknown or not {"train", "test"} <= set(loaded):
        raise ValueError(
            f"data.load returned splits {sorted(loaded)}: a mapping of given splits has keys train and test, "
            "and optionally val"
        )
    parts = {name: [_array(a) for a in loaded[name]] for name in GIVEN if name in loaded}
    widths = {len(arrays) for arrays in parts.values()}
    if len(widths) != 1:
        raise ValueError("data.load: every given split must hold the same arrays, (X, y) or (X, y, w)")
    columns = [_concatenate([arrays[i] for arrays in parts.values()]) for i in range(widths.pop())]
    codes = np.concatenate([np.full(len(arrays[0]), GIVEN.index(name)) for name, arrays in parts.items()])
    return columns, codes


def _train_val_test(y: np.ndarray, split: Split, contiguous: bool) -> dict[str, np.ndarray]:
    everything = np.arange(len(y))
    held_out = split.val_fraction + split.test_fraction
    if held_out == 0:
        return {"train": everything, "val": everything[:0], "test": everything[:0]}
    order = {"shuffle": False} if contiguous else {"random_state": split.split_seed}
    train, rest = train_test_split(everything, test_size=held_out, stratify=y if split.stratify else None, **order)
    if split.val_fraction == 0 or split.test_fraction == 0:
        empty = rest[:0]
        return {
            "train": train,
            "val": rest if split.val_fraction else empty,
            "test": rest if split.test_fraction else empty,
        }
    val, test = train_test_split(
        rest, test_size=split.test_fraction / held_out, stratify=y[rest] if split.stratify else None, **order
    )
    return {"train": train, "val": val, "test": test}


def _array(a):
    """An array, or a table's pandas frame as it is (its columns are encoded after the split)."""
    return a if hasattr(a, "iloc") else np.asarray(a)


def _concatenate(parts: list):
    if hasattr(parts[0], "iloc"):
        import pandas as pd

        return pd.concat(parts, ignore_index=True)
    return np.concatenate(parts)
