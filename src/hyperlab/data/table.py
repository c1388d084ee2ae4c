"""Tables from disk: a CSV, Parquet or JSON-lines file with a target column, string categories and missing values.

`table_data(path, target, ...)` is the `_target_` of conf/data/table.yaml: it returns an ArrayDataModule whose
`load` reads the file(s) (pandas + pyarrow) and whose `encode` step is scikit-learn's ColumnTransformer, fitted on
the train split only: numeric columns imputed by their median with a missing-value indicator column, the other
columns imputed as the level "missing" and one-hot encoded (at most `max_categories` levels a column, the rarest
grouped as "infrequent"; a level the train split never saw encodes as that group when the column has one, else as
all zeros). Standardisation is the data module's own `normalize` (train statistics). Given splits come from
`split_column` (values train / val / test) or from separate files (`test_path`, `val_path`).
"""

from functools import partial
from pathlib import Path

from hyperlab.data.arrays import ArrayDataModule

READERS = {".csv": "read_csv", ".parquet": "read_parquet", ".jsonl": "read_json", ".json": "read_json"}


def table_data(
    path: str,
    target: str,
    features: list[str] | None = None,
    split_column: str | None = None,
    test_path: str | None = None,
    val_path: str | None = None,
    max_categories: int = 20,
    **settings,
) -> ArrayDataModule:
    """An ArrayDataModule over the table at `path` (the other knobs are ArrayDataModule's)."""
    load = partial(load_table, path, target, features, split_column, test_path, val_path)
    return ArrayDataModule(load, encode=partial(encoder, max_categories=max_categories), **settings)


def read_table(path: str, key: str = "data.path"):
    import pandas as pd

    suffix = Path(path).suffix.lower()
    if suffix not in READERS:
        raise ValueError(f"{key}={path!r}: a {', '.join(READERS)} file")
    lines = {"lines": True} if suffix in (".jsonl", ".json") else {}
    return getattr(pd, READERS[suffix])(path, **lines)


def load_table(path, target, features=None, split_column=None, test_path=None, val_path=None):
    """(X frame, y) of the file, or {"train", "val", "test"} of them when the splits are given. Rows without a
    target are dropped: nothing can be learnt or scored from them."""
    frames = {"train": read_table(path)}
    for split, file, key in (("test", test_path, "data.test_path"), ("val", val_path, "data.val_path")):
        if file is not None:
            frames[split] = read_table(file, key)
    if split_column is not None:
        frames = _by_split_column(frames["train"], split_column)
    columns = _columns(frames["train"], target, features, split_column)
    out = {split: _features_and_target(frame, columns, target) for split, frame in frames.items()}
    return out if len(out) > 1 else out["train"]


def _by_split_column(frame, split_column: str) -> dict:
    if split_column not in frame:
        raise ValueError(f"data.split_column={split_column!r} is not a column; columns: {', '.join(frame.columns)}")
    labels = frame[split_column].map(str)  # a missing value reads "nan": refused below, not silently dropped
    values = set(labels)
    if not values <= {"train", "val", "test"}:
        raise ValueError(f"data.split_column={split_column!r} holds {sorted(values)}: allowed values train, val, test")
    return {split: frame[labels == split] for split in ("train", "val", "test") if split in values}


def _columns(frame, target: str, features, split_column) -> list[str]:
    if target not in frame:
        raise ValueError(f"data.target={target!r} is not a column; columns: {', '.join(frame.columns)}")
    wanted = list(features) if features else [c for c in frame.columns if c not in (target, split_column)]
    missing = [c for c in wanted if c not in frame]
    if missing:
        raise ValueError(f"data.features: {missing} are not columns; columns: {', '.join(frame.columns)}")
    return wanted


def _features_and_target(frame, columns: list[str], target: str):
    """The feature columns, the non-numeric ones as Python strings (mixed types such as 1 and "a" become levels
    one encoder can sort; missing values stay missing), and the target."""
    from pandas.api.types import is_numeric_dtype

    frame = frame[frame[target].notna()].reset_index(drop=True)
    features = frame[columns].copy()
    for column in features.columns:
        if not is_numeric_dtype(features[column].dtype):
            values = features[column].astype(object)
            features[column] = values.where(values.isna(), values.astype(str)).astype(object)
    return features, frame[target].to_numpy(dtype=None if is_numeric_dtype(frame[target].dtype) else object)


def encoder(train_rows, max_categories: int = 20):
    """The ColumnTransformer for these columns (numeric: median + missing indicator; the rest: "missing" level +
    one-hot), refusing a column that is missing in every train row."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    empty = [c for c in train_rows.columns if train_rows[c].isna().all()]
    if empty:
        raise ValueError(f"data.features: column(s) {empty} are missing in every train row; leave them out")
    numeric = list(train_rows.select_dtypes("number").columns)
    categorical = [c for c in train_rows.columns if c not in numeric]
    one_hot = OneHotEncoder(handle_unknown="infrequent_if_exist", max_categories=max_categories, sparse_output=False)
    missing_level = SimpleImputer(strategy="constant", fill_value="missing")
    return ColumnTransformer(
        [
            ("numeric", SimpleImputer(strategy="median", add_indicator=True), numeric),
            ("categorical", make_pipeline(missing_level, one_hot), categorical),
        ],
        verbose_feature_names_out=False,
    )
