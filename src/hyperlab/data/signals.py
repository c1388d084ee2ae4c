"""1-D signals as a data.load: problems of the UCR/UEA time-series archive that aeon ships inside its package,
with their official split; and MNIST-1D (Greydanus & Kobak, "Scaling down deep learning with MNIST-1D", ICML
2024), ten digit-like 1-D templates padded, shifted, scaled, sheared and noised into 40-step signals. The `mnist1d`
package generates it locally from its templates (no download) in about 2 s, with its official train/test split
(4000 / 1000 rows at the defaults), which hyperlab keeps as given so scores compare with published ones."""

import numpy as np


def load_mnist1d(num_samples: int = 5000, train_split: float = 0.8, seed: int = 42) -> dict:
    """{"train": (X, y), "test": (X, y)}, X of shape (N, 1, 40): one channel of 40 steps."""
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples, args.train_split, args.seed = num_samples, train_split, seed
    data = make_dataset(args)
    as_signal = lambda x: np.asarray(x, dtype=np.float32)[:, None, :]  # noqa: E731  (N, 40) -> (N, C=1, L=40)
    return {"train": (as_signal(data["x"]), data["y"]), "test": (as_signal(data["x_test"]), data["y_test"])}


def shipped_ucr_problems() -> list[str]:
    """The archive's problems inside the installed aeon package (no download at run time)."""
    from pathlib import Path

    import aeon.datasets

    folder = Path(aeon.datasets.__file__).parent / "data"
    return sorted(p.name for p in folder.iterdir() if (p / f"{p.name}_TRAIN.ts").is_file())


def load_ucr(name: str) -> dict:
    """{"train": (X, y), "test": (X, y)}: a UCR/UEA classification problem with its official split kept as given,
    X of shape (N, C, L) float32, y its string labels. aeon (the `timeseries` extra) reads it from its own package."""
    try:
        from aeon.datasets import load_classification
    except ImportError as error:
        raise ValueError("data=ucr reads aeon's copy of the archive: pip install -e '.[timeseries]'") from error
    shipped = shipped_ucr_problems()
    if name not in shipped:
        raise ValueError(f"data.load.name={name!r}: not among the problems aeon ships: {', '.join(shipped)}")
    splits = {}
    for split in ("train", "test"):
        x, y = load_classification(name, split=split)
        splits[split] = (np.asarray(x, dtype=np.float32), np.asarray(y))
    return splits
