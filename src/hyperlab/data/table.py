"""Tables from disk: a CSV, Parquet or JSON-lines file with a target column, string categories and missing values.

`table_data(path, target, ...)` is the `_target_` of conf/data/table.yaml: it returns an ArrayDataModule whose
`load` reads the file(s) (pandas + pyarrow) and whose `encode` step is scikit-learn's ColumnTransformer, fitted on
the train split only: numeric columns imputed by their median with a missing-value indicator column, the other
columns imputed as the level "missing" and one-hot encoded (at most `max_categories` levels a column, the rarest
grouped as "infrequent"; a level the train split never saw encodes as that group when the column has one, else as
all zeros). Standardisation is the data module's own `normalize` (train statistics). Given splits come from
`split_column` (values train / val / test) or from separate files (`test_path`, `val_path`).
"""

import dataclasses
from functools import partial

from hyperlab.data.arrays import ArrayDataModule
from hyperlab.data.loading import Loader
from hyperlab.data.splits import Split
from hyperlab.data.table_io import encoder, feature_columns, features_and_target, read_table
from hyperlab.data.table_shard import StreamedTableDataModule


def table_data(
    path: str,
    target: str,
    features: list[str] | None = None,
    split_column: str | None = None,
    test_path: str | None = None,
    val_path: str | None = None,
    max_categories: int = 100,
    min_frequency: int = 10,
    convert: bool = False,
    fit_rows: int = 100_000,
    **settings,
):
    """An ArrayDataModule over the table at `path` (the other knobs are ArrayDataModule's); with `convert`, a
    StreamedTableDataModule over a memory-mapped shard of it, for tables larger than memory."""
    if convert:
        files = {"train": path, **({"test": test_path} if test_path else {}), **({"val": val_path} if val_path else {})}
        return streamed(files, target, features, split_column, (max_categories, min_frequency), fit_rows, settings)
    load = partial(load_table, path, target, features, split_column, test_path, val_path)
    encode = partial(encoder, max_categories=max_categories, min_frequency=min_frequency)
    return ArrayDataModule(load, encode=encode, **settings)


def streamed(files: dict, target, features, split_column, levels: tuple[int, int], fit_rows, settings: dict):
    """The streamed module from data=table's knobs: the split and loader ones it uses (the in-memory-only ones
    are refused at config time, hyperlab.config.rules)."""
    fields = {group: {f.name for f in dataclasses.fields(group)} for group in (Split, Loader)}
    split, loading = (group(**{k: v for k, v in settings.items() if k in names}) for group, names in fields.items())
    return StreamedTableDataModule(
        files, target, features, split_column, levels, fit_rows,
        cache_dir=settings.get("cache_dir") or ".cache/tables", task=settings.get("task", "classification"),
        normalize=settings.get("normalize", True), split=split, loading=loading, augment=settings.get("augment"),
    )  # fmt: skip


def load_table(path, target, features=None, split_column=None, test_path=None, val_path=None):
    """(X frame, y) of the file, or {"train", "val", "test"} of them when the splits are given. Rows without a
    target are dropped: nothing can be learnt or scored from them."""
    frames = {"train": read_table(path)}
    for split, file, key in (("test", test_path, "data.test_path"), ("val", val_path, "data.val_path")):
        if file is not None:
            frames[split] = read_table(file, key)
    if split_column is not None:
        frames = _by_split_column(frames["train"], split_column)
    columns = feature_columns(frames["train"], target, features, split_column)
    out = {split: features_and_target(frame, columns, target) for split, frame in frames.items()}
    return out if len(out) > 1 else out["train"]


def _by_split_column(frame, split_column: str) -> dict:
    if split_column not in frame:
        raise ValueError(f"data.split_column={split_column!r} is not a column; columns: {', '.join(frame.columns)}")
    labels = frame[split_column].map(str)  # a missing value reads "nan": refused below, not silently dropped
    values = set(labels)
    if not values <= {"train", "val", "test"}:
        raise ValueError(f"data.split_column={split_column!r} holds {sorted(values)}: allowed values train, val, test")
    return {split: frame[labels == split] for split in ("train", "val", "test") if split in values}
