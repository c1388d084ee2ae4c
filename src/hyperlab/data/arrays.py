from collections.abc import Callable, Iterator, Sequence

import lightning as L
import numpy as np
import torch
from sklearn.model_selection import KFold, StratifiedKFold, train_test_split
from torch.utils.data import DataLoader, Sampler, TensorDataset


class EpochSeededSampler(Sampler[int]):
    """A random permutation per epoch that depends only on (seed, epoch).

    Lightning calls `set_epoch` at every epoch start, so a run resumed at epoch k sees exactly the order an
    unbroken run saw at epoch k (torch's RandomSampler draws from the global RNG, which a resume resets).
    """

    def __init__(self, num_samples: int, seed: int):
        self.num_samples, self.seed, self.epoch = num_samples, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(torch.randperm(self.num_samples, generator=generator).tolist())

    def __len__(self) -> int:
        return self.num_samples


class ArrayDataModule(L.LightningDataModule):
    """A classification dataset that fits in memory as arrays `(X, y)`, split into train/val/test.

    `load` is any callable returning `(X, y)`, e.g. `sklearn.datasets.load_digits(return_X_y=True)`.
    The split is stratified by class when `stratify` and seeded by `split_seed` (fixed by default, so runs
    with different `seed`s are scored on the same test set). `normalize` standardises each feature with the
    mean and std of the train split only, so nothing leaks from val/test. With `num_folds`, train and val
    are fold `fold` of a (stratified) k-fold split of train + val, and the test split does not change.
    """

    def __init__(
        self,
        load: Callable[[], tuple[np.ndarray, np.ndarray]],
        batch_size: int = 64,
        val_fraction: float = 0.1,
        test_fraction: float = 0.2,
        stratify: bool = True,
        split_seed: int = 0,
        shuffle: bool = True,
        shuffle_seed: int = 0,
        normalize: bool = True,
        image_shape: Sequence[int] | None = None,
        num_workers: int = 0,
        pin_memory: bool = False,
        persistent_workers: bool = False,
        num_folds: int | None = None,
        fold: int | None = None,
    ):
        super().__init__()
        if num_folds is not None and not (num_folds >= 2 and fold is not None and 0 <= fold < num_folds):
            raise ValueError(f"data.num_folds={num_folds} needs >= 2 folds and data.fold in [0, {num_folds})")
        if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
            raise ValueError(
                f"data.val_fraction={val_fraction} + data.test_fraction={test_fraction} must be < 1, each in [0, 1)"
            )
        self.load, self.batch_size = load, batch_size
        self.val_fraction, self.test_fraction, self.stratify, self.split_seed = (
            val_fraction,
            test_fraction,
            stratify,
            split_seed,
        )
        self.shuffle, self.shuffle_seed, self.normalize = shuffle, shuffle_seed, normalize
        self.num_folds, self.fold = num_folds, fold
        self.image_shape = tuple(image_shape) if image_shape else None
        self.loader_kwargs = {
            "num_workers": num_workers,
            "pin_memory": pin_memory,
            "persistent_workers": persistent_workers and num_workers > 0,
        }
        self.splits: dict[str, TensorDataset] = {}

    def setup(self, stage: str | None = None) -> None:
        if self.splits:  # idempotent: train() calls it early to read num_classes / input_shape
            return
        features, labels = self.load()
        x = torch.as_tensor(np.asarray(features), dtype=torch.float32)
        y = torch.as_tensor(np.asarray(labels), dtype=torch.long)
        self.indices = self._split(y.numpy())
        if self.normalize:
            train = x[self.indices["train"]]
            # per-feature statistics; constant features (digits' border pixels) keep std 1, not 0
            mean, std = train.mean(0), train.std(0)
            x = (x - mean) / torch.where(std > 0, std, torch.ones_like(std))
        if self.image_shape:
            x = x.reshape(len(x), *self.image_shape)
        self.num_classes = int(y.max()) + 1
        self.input_shape = tuple(x.shape[1:])
        self.splits = {name: TensorDataset(x[idx], y[idx]) for name, idx in self.indices.items()}

    def _split(self, y: np.ndarray) -> dict[str, np.ndarray]:
        splits = self._train_val_test(y)
        if not self.num_folds:
            return splits
        # k-fold over train + val; the test split stays the one plain runs use, so scores are comparable
        pool = np.sort(np.concatenate([splits["train"], splits["val"]]))
        kfold = StratifiedKFold if self.stratify else KFold
        folds = kfold(n_splits=self.num_folds, shuffle=True, random_state=self.split_seed).split(pool, y[pool])
        train, val = list(folds)[self.fold]
        return {"train": pool[train], "val": pool[val], "test": splits["test"]}

    def _train_val_test(self, y: np.ndarray) -> dict[str, np.ndarray]:
        everything = np.arange(len(y))
        held_out = self.val_fraction + self.test_fraction
        if held_out == 0:
            return {"train": everything, "val": everything[:0], "test": everything[:0]}
        train, rest = train_test_split(
            everything, test_size=held_out, random_state=self.split_seed, stratify=y if self.stratify else None
        )
        if self.val_fraction == 0 or self.test_fraction == 0:
            empty = rest[:0]
            return {
                "train": train,
                "val": rest if self.val_fraction else empty,
                "test": rest if self.test_fraction else empty,
            }
        val, test = train_test_split(
            rest,
            test_size=self.test_fraction / held_out,
            random_state=self.split_seed,
            stratify=y[rest] if self.stratify else None,
        )
        return {"train": train, "val": val, "test": test}

    def train_dataloader(self) -> DataLoader:
        data = self.splits["train"]
        sampler = EpochSeededSampler(len(data), self.shuffle_seed) if self.shuffle else None
        return self._loader(data, sampler)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.splits["val"])

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.splits["test"])

    def predict_dataloader(self) -> DataLoader:
        return self.test_dataloader()

    def _loader(self, data: TensorDataset, sampler: Sampler | None = None) -> DataLoader:
        # Each DataLoader iterator draws a base seed from its generator; with the default (global) RNG that
        # draw would shift dropout masks, and a resumed run, whose first iterator is built before the RNG is
        # restored, would drift from an unbroken one. A generator of its own leaves the global RNG to the model.
        generator = torch.Generator().manual_seed(self.shuffle_seed)
        return DataLoader(data, batch_size=self.batch_size, sampler=sampler, generator=generator, **self.loader_kwargs)
