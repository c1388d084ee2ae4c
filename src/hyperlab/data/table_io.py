"""Reading and encoding tables: what the in-memory table (hyperlab.data.table) and the streamed one
(hyperlab.data.table_shard) share."""

from pathlib import Path

READERS = {".csv": "read_csv", ".parquet": "read_parquet", ".jsonl": "read_json", ".json": "read_json"}


def read_table(path: str, key: str = "data.path"):
    import pandas as pd

    suffix = Path(path).suffix.lower()
    if suffix not in READERS:
        raise ValueError(f"{key}={path!r}: a {', '.join(READERS)} file")
    lines = {"lines": True} if suffix in (".jsonl", ".json") else {}
    return getattr(pd, READERS[suffix])(path, **lines)


def feature_columns(frame, target: str, features, split_column) -> list[str]:
    if target not in frame:
        raise ValueError(f"data.target={target!r} is not a column; columns: {', '.join(frame.columns)}")
    wanted = list(features) if features else [c for c in frame.columns if c not in (target, split_column)]
    missing = [c for c in wanted if c not in frame]
    if missing:
        raise ValueError(f"data.features: {missing} are not columns; columns: {', '.join(frame.columns)}")
    return wanted


def features_and_target(frame, columns: list[str], target: str):
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


def encoder(train_rows, max_categories: int = 100, min_frequency: int = 10):
    """The ColumnTransformer for these columns (numeric: median + missing indicator; the rest: "missing" level +
    one-hot: a column per level seen in at least `min_frequency` train rows, at most `max_categories` a column, the
    rest sharing one "infrequent" column), refusing a column that is missing in every train row. A frequency floor,
    not only a count cap: a cap of 20 merged half the levels of a 40-level column though each had 60 rows
    (bench/table_compete.py's churn: its region)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    empty = [c for c in train_rows.columns if train_rows[c].isna().all()]
    if empty:
        raise ValueError(f"data.features: column(s) {empty} are missing in every train row; leave them out")
    numeric = list(train_rows.select_dtypes("number").columns)
    categorical = [c for c in train_rows.columns if c not in numeric]
    one_hot = OneHotEncoder(
        handle_unknown="infrequent_if_exist", max_categories=max_categories, min_frequency=min_frequency,
        sparse_output=False,
    )  # fmt: skip
    missing_level = SimpleImputer(strategy="constant", fill_value="missing")
    return ColumnTransformer(
        [
            ("numeric", SimpleImputer(strategy="median", add_indicator=True), numeric),
            ("categorical", make_pipeline(missing_level, one_hot), categorical),
        ],
        verbose_feature_names_out=False,
    )
