"""Which rows train, validate and test: a stratified random split, k-fold cross-validation over train + val, the
refit's train + val, and nested cross-validation's outer folds. Row indices only; the arrays stay where they are."""

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


def split_rows(y: np.ndarray, split: Split, contiguous: bool = False) -> dict[str, np.ndarray]:
    """Row indices of train, val and test for targets `y`. `contiguous`: consecutive text (language-model windows),
    train first, then val, then test: a random split would score on text the model trained on."""
    splits = _outer_fold(y, split) if split.outer_folds else _train_val_test(y, split, contiguous)
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


def _outer_fold(y: np.ndarray, split: Split) -> dict[str, np.ndarray]:
    """Nested cross-validation's outer loop: test is fold `outer_fold` of a (stratified) k-fold split of every
    row, so the k test splits partition the data; val is `val_fraction` of all rows, drawn from the rest."""
    kfold = StratifiedKFold if split.stratify else KFold
    folds = kfold(n_splits=split.outer_folds, shuffle=True, random_state=split.split_seed).split(y, y)
    rest, test = list(folds)[split.outer_fold]
    train, val = train_test_split(
        rest,
        test_size=split.val_fraction * len(y) / len(rest),
        stratify=y[rest] if split.stratify else None,
        random_state=split.split_seed,
    )
    return {"train": train, "val": val, "test": test}


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
