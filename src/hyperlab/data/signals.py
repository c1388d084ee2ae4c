"""1-D signals as a data.load: MNIST-1D (Greydanus & Kobak, "Scaling down deep learning with MNIST-1D", ICML 2024),
ten digit-like 1-D templates padded, shifted, scaled, sheared and noised into 40-step signals. The `mnist1d`
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
