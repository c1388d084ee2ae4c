import hashlib
import json
import math
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import lightning as L
import numpy as np
import torch
from sklearn.model_selection import KFold, StratifiedKFold, train_test_split
from torch import Tensor
from torch.utils.data import DataLoader, Sampler, TensorDataset

from hyperlab.config import DATA_TASKS, SAMPLERS, choose
from hyperlab.data import preprocess


class EpochSeededSampler(Sampler[int]):
    """A random order per epoch that depends only on (seed, epoch): a permutation, or with `weights` a draw of
    `num_samples` indices with replacement, index i drawn with probability proportional to weights[i].

    Lightning calls `set_epoch` at every epoch start, so a run resumed at epoch k sees exactly the order an
    unbroken run saw at epoch k (torch's RandomSampler draws from the global RNG, which a resume resets).
    """

    def __init__(self, num_samples: int, seed: int, weights: Tensor | None = None):
        self.num_samples, self.seed, self.weights, self.epoch = num_samples, seed, weights, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def order(self) -> Tensor:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        if self.weights is None:
            return torch.randperm(self.num_samples, generator=generator)
        return torch.multinomial(self.weights, self.num_samples, replacement=True, generator=generator)

    def __iter__(self) -> Iterator[int]:
        return iter(self.order().tolist())

    def __len__(self) -> int:
        return self.num_samples


class TensorBatches:
    """Batches cut from tensors that already sit on the training device: one index (or slice) per batch, no
    per-sample `__getitem__`, no collate, no host-to-device copy. For datasets that fit in memory.

    `sampler` (an EpochSeededSampler) gives the order; Lightning finds it as `.sampler` and sets its epoch. Under
    DDP each rank takes every world_size-th index of the (padded) order, as torch's DistributedSampler does.
    """

    batch_sampler = None  # Lightning reads `.batch_sampler` before `.sampler`, as on a DataLoader

    def __init__(self, tensors: Sequence[Tensor], batch_size: int, sampler=None, rank: int = 0, world_size: int = 1):
        self.tensors, self.batch_size, self.sampler = tuple(tensors), batch_size, sampler
        self.rank, self.world_size = rank, world_size

    def _order(self) -> Tensor | None:
        n = len(self.tensors[0])
        if self.sampler is None and self.world_size == 1:
            return None  # in order: contiguous slices, no gather at all
        order = self.sampler.order() if self.sampler is not None else torch.arange(n)
        if self.world_size > 1:
            padded = math.ceil(len(order) / self.world_size) * self.world_size
            order = torch.cat([order, order[: padded - len(order)]])[self.rank :: self.world_size]
        return order.to(self.tensors[0].device)

    def __iter__(self) -> Iterator[tuple[Tensor, ...]]:
        order = self._order()
        if order is None:
            for start in range(0, len(self.tensors[0]), self.batch_size):
                yield tuple(t[start : start + self.batch_size] for t in self.tensors)
            return
        for index in order.split(self.batch_size):
            yield tuple(t[index] for t in self.tensors)

    def __len__(self) -> int:
        n = len(self.tensors[0])
        return math.ceil(math.ceil(n / self.world_size) / self.batch_size)


class ArrayDataModule(L.LightningDataModule):
    """A dataset that fits in memory as arrays `(X, y)` or `(X, y, row_weights)`, split into train/val/test.

    `load` is any callable returning those arrays, e.g. `sklearn.datasets.load_digits(return_X_y=True)`.
    The split is stratified by class when `stratify` and seeded by `split_seed` (fixed by default, so runs
    with different `seed`s are scored on the same test set); language-model windows split contiguously (train
    text first, then val, then test). `normalize` standardises each feature (and a regression target) with
    the mean and std of the train split only, so nothing leaks from val/test. With `num_folds`, train and val
    are fold `fold` of a (stratified) k-fold split of train + val, and the test split does not change.
    Preprocessing (cleaning, imbalance, outliers, resampling, smoothing) is in `hyperlab.data.preprocess`.

    `device_resident` serves batches by indexing tensors kept on the training device (`TensorBatches`);
    false uses torch DataLoaders, with the loader knobs (workers, pinned memory, prefetch, persistence).
    """

    def __init__(
        self,
        load: Callable[[], tuple[np.ndarray, ...]],
        batch_size: int = 64,
        eval_batch_size: int = 1024,
        task: str = "classification",
        val_fraction: float = 0.1,
        test_fraction: float = 0.2,
        stratify: bool = True,
        split_seed: int = 0,
        shuffle: bool = True,
        shuffle_seed: int = 0,
        normalize: bool = True,
        image_shape: Sequence[int] | None = None,
        drop_nan_rows: bool = True,
        drop_duplicates: bool = False,
        imbalance: float | None = None,
        outliers: str | None = None,
        outlier_fraction: float = 0.05,
        sampler: str | None = None,
        smooth_sigma: float = 0.0,
        augment: Callable[[Tensor], Tensor] | None = None,
        cache_dir: str | None = None,
        device_resident: bool = True,
        num_workers: int = 0,
        pin_memory: bool = False,
        persistent_workers: bool = False,
        prefetch_factor: int | None = None,
        num_folds: int | None = None,
        fold: int | None = None,
        refit: bool = False,
        outer_folds: int | None = None,
        outer_fold: int | None = None,
    ):
        super().__init__()
        choose("data.task", task, DATA_TASKS)
        if sampler is not None:
            choose("data.sampler", sampler, SAMPLERS, optional=True)
        if num_folds is not None and not (num_folds >= 2 and fold is not None and 0 <= fold < num_folds):
            raise ValueError(f"data.num_folds={num_folds} needs >= 2 folds and data.fold in [0, {num_folds})")
        if outer_folds is not None and not (
            outer_folds >= 2 and outer_fold is not None and 0 <= outer_fold < outer_folds
        ):
            raise ValueError(
                f"data.outer_folds={outer_folds} needs >= 2 folds and data.outer_fold in [0, {outer_folds})"
            )
        if refit and num_folds is not None:
            raise ValueError("data.refit=true trains on train + val as one split: set data.num_folds=null")
        if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
            raise ValueError(
                f"data.val_fraction={val_fraction} + data.test_fraction={test_fraction} must be < 1, each in [0, 1)"
            )
        if task != "classification" and (stratify or sampler or imbalance):
            raise ValueError(
                f"data.task={task}: data.stratify, data.sampler and data.imbalance need class labels "
                "(data.task=classification); set them to false/null"
            )
        if smooth_sigma and not image_shape:
            raise ValueError(f"data.smooth_sigma={smooth_sigma} blurs images: it needs data.image_shape")
        self.load, self.batch_size, self.task = load, batch_size, task
        self.eval_batch_size = eval_batch_size
        # everything that changes the tensors: the cache key, and the record of how they were made
        self.recipe = {
            "load": repr(load),
            "task": task,
            "val_fraction": val_fraction,
            "test_fraction": test_fraction,
            "stratify": stratify,
            "split_seed": split_seed,
            "normalize": normalize,
            "image_shape": list(image_shape) if image_shape else None,
            "drop_nan_rows": drop_nan_rows,
            "drop_duplicates": drop_duplicates,
            "imbalance": imbalance,
            "outliers": outliers,
            "outlier_fraction": outlier_fraction,
            "sampler": sampler if sampler != "weighted" else None,  # weighted only changes the order
            "smooth_sigma": smooth_sigma,
            "num_folds": num_folds,
            "fold": fold,
            "refit": refit,
            "outer_folds": outer_folds,
            "outer_fold": outer_fold,
        }
        self.shuffle, self.shuffle_seed, self.weighted = shuffle, shuffle_seed, sampler == "weighted"
        self.augment, self.cache_dir, self.device_resident = augment, cache_dir, device_resident
        self.loader_kwargs = {
            "num_workers": num_workers,
            "pin_memory": pin_memory,
            "persistent_workers": persistent_workers and num_workers > 0,
            "prefetch_factor": prefetch_factor if num_workers > 0 else None,
        }
        self.splits: dict[str, TensorDataset] = {}
        self.cache_hit = False

    # --- building the splits -------------------------------------------------------------------------------------

    def setup(self, stage: str | None = None) -> None:
        if self.splits:  # idempotent: train() calls it early to read num_classes / input_shape
            return
        cache = self._cache_file()
        if cache is not None and cache.is_file():
            state, self.cache_hit = torch.load(cache, weights_only=True), True
        else:
            state = self._preprocess()
            if cache is not None:
                cache.parent.mkdir(parents=True, exist_ok=True)
                torch.save(state, cache.with_suffix(".tmp"))
                cache.with_suffix(".tmp").replace(cache)  # atomic: a crash never leaves half a cache file
        self.indices = {name: index.numpy() for name, index in state["indices"].items()}
        self.splits = {name: TensorDataset(*tensors) for name, tensors in state["splits"].items()}
        self.num_classes = state["num_classes"]
        self.input_shape = tuple(self.splits["train"].tensors[0].shape[1:])
        self.vocab_size = self.num_classes if self.task == "language_model" else None

    def _cache_file(self) -> Path | None:
        if self.cache_dir is None:
            return None
        key = hashlib.sha256(json.dumps(self.recipe, sort_keys=True).encode()).hexdigest()[:16]
        return Path(self.cache_dir) / f"arrays-{key}.pt"

    def _preprocess(self) -> dict:
        r = self.recipe
        x, y, *rest = (np.asarray(a) for a in self.load())
        weights = rest[0].astype(np.float32) if rest else None
        keep = preprocess.clean(x, y, r["drop_nan_rows"], r["drop_duplicates"])
        if r["imbalance"] is not None:
            keep = keep[preprocess.make_imbalanced(y[keep], r["imbalance"], r["split_seed"])]
        x, y, weights = x[keep], y[keep], None if weights is None else weights[keep]
        indices = self._split(y)
        if r["outliers"]:
            train = indices["train"]
            indices["train"] = train[
                preprocess.remove_outliers(x[train], r["outliers"], r["outlier_fraction"], r["split_seed"])
            ]
        arrays = {
            name: [x[index], y[index]] + ([] if weights is None else [weights[index]])
            for name, index in indices.items()
        }
        if r["sampler"]:  # over/under-sampling or SMOTE: the train split only
            if weights is not None:
                raise ValueError(f"data.sampler={r['sampler']} cannot carry per-row weights; use data.sampler=weighted")
            arrays["train"] = list(preprocess.resample(*arrays["train"], r["sampler"], r["split_seed"]))
        if r["image_shape"]:
            for split in arrays.values():
                split[0] = split[0].reshape(len(split[0]), *r["image_shape"])
        tensors = {name: self._tensors(split) for name, split in arrays.items()}
        if r["normalize"]:
            _standardise(tensors, 0)
            if self.task == "regression":
                _standardise(tensors, 1)
        if r["smooth_sigma"]:
            for split in tensors.values():
                split[0] = torch.from_numpy(preprocess.smooth_images(split[0].numpy(), r["smooth_sigma"]))
        num_classes = 1 if self.task == "regression" else int(y.max()) + 1
        indices = {name: torch.as_tensor(index) for name, index in indices.items()}
        return {"indices": indices, "splits": tensors, "num_classes": num_classes}

    def _tensors(self, arrays: list[np.ndarray]) -> list[Tensor]:
        features, targets, *weights = arrays
        x_dtype = torch.long if self.task == "language_model" else torch.float32
        y_dtype = torch.float32 if self.task == "regression" else torch.long
        out = [torch.as_tensor(features, dtype=x_dtype), torch.as_tensor(targets, dtype=y_dtype)]
        return out + [torch.as_tensor(w, dtype=torch.float32) for w in weights]

    def _split(self, y: np.ndarray) -> dict[str, np.ndarray]:
        splits = self._outer_fold(y) if self.recipe["outer_folds"] else self._train_val_test(y)
        if self.recipe["refit"]:  # the model selection's final fit: train + val as one train split, val empty
            train = np.sort(np.concatenate([splits["train"], splits["val"]]))
            return {"train": train, "val": train[:0], "test": splits["test"]}
        num_folds, fold = self.recipe["num_folds"], self.recipe["fold"]
        if not num_folds:
            return splits
        # k-fold over train + val; the test split stays the one plain runs use, so scores are comparable
        pool = np.sort(np.concatenate([splits["train"], splits["val"]]))
        kfold = StratifiedKFold if self.recipe["stratify"] else KFold
        folds = kfold(n_splits=num_folds, shuffle=True, random_state=self.recipe["split_seed"]).split(pool, y[pool])
        train, val = list(folds)[fold]
        return {"train": pool[train], "val": pool[val], "test": splits["test"]}

    def _outer_fold(self, y: np.ndarray) -> dict[str, np.ndarray]:
        """Nested cross-validation's outer loop: test is fold `outer_fold` of a (stratified) k-fold split of every
        row, so the k test splits partition the data; val is `val_fraction` of all rows, drawn from the rest."""
        r = self.recipe
        kfold = StratifiedKFold if r["stratify"] else KFold
        folds = kfold(n_splits=r["outer_folds"], shuffle=True, random_state=r["split_seed"]).split(y, y)
        rest, test = list(folds)[r["outer_fold"]]
        train, val = train_test_split(
            rest,
            test_size=r["val_fraction"] * len(y) / len(rest),
            stratify=y[rest] if r["stratify"] else None,
            random_state=r["split_seed"],
        )
        return {"train": train, "val": val, "test": test}

    def _train_val_test(self, y: np.ndarray) -> dict[str, np.ndarray]:
        r = self.recipe
        everything = np.arange(len(y))
        held_out = r["val_fraction"] + r["test_fraction"]
        if held_out == 0:
            return {"train": everything, "val": everything[:0], "test": everything[:0]}
        # language-model windows are consecutive text: a random split would score on text the model trained on
        contiguous = {"shuffle": False} if self.task == "language_model" else {"random_state": r["split_seed"]}
        train, rest = train_test_split(
            everything, test_size=held_out, stratify=y if r["stratify"] else None, **contiguous
        )
        if r["val_fraction"] == 0 or r["test_fraction"] == 0:
            empty = rest[:0]
            return {
                "train": train,
                "val": rest if r["val_fraction"] else empty,
                "test": rest if r["test_fraction"] else empty,
            }
        val, test = train_test_split(
            rest,
            test_size=r["test_fraction"] / held_out,
            stratify=y[rest] if r["stratify"] else None,
            **contiguous,
        )
        return {"train": train, "val": val, "test": test}

    # --- serving batches -----------------------------------------------------------------------------------------

    def train_dataloader(self):
        data = self.splits["train"]
        weights = None
        if self.weighted:  # class-balanced draws with replacement
            weights = torch.as_tensor(preprocess.balanced_weights(data.tensors[1].numpy()))
        # debug=overfit trains on the first batch again and again: Lightning cannot switch our sampler off itself
        overfit = self.trainer is not None and self.trainer.overfit_batches > 0
        random_order = (self.shuffle or self.weighted) and not overfit
        sampler = EpochSeededSampler(len(data), self.shuffle_seed, weights) if random_order else None
        return self._loader(data, sampler)

    def example_input(self) -> Tensor:
        """One training sample as a batch of one (B=1), e.g. to count the network's FLOPs."""
        return self.splits["train"].tensors[0][:1]

    def val_dataloader(self):
        if len(self.splits["val"]) == 0:  # data.refit: Lightning skips validation for an empty list
            return []
        return self._loader(self.splits["val"], batch_size=self.eval_batch_size)

    def test_dataloader(self):
        return self._loader(self.splits["test"], batch_size=self.eval_batch_size)

    def predict_dataloader(self):
        return self.test_dataloader()

    def _loader(self, data: TensorDataset, sampler: EpochSeededSampler | None = None, batch_size: int | None = None):
        batch_size = batch_size or self.batch_size
        trainer = self.trainer
        if self.device_resident:
            device = trainer.strategy.root_device if trainer is not None else torch.device("cpu")
            tensors = [t.to(device) for t in data.tensors]
            rank, world = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
            return TensorBatches(tensors, batch_size, sampler, rank, world)
        # Each DataLoader iterator draws a base seed from its generator; with the default (global) RNG that
        # draw would shift dropout masks, and a resumed run, whose first iterator is built before the RNG is
        # restored, would drift from an unbroken one. A generator of its own leaves the global RNG to the model.
        generator = torch.Generator().manual_seed(self.shuffle_seed)
        return DataLoader(data, batch_size=batch_size, sampler=sampler, generator=generator, **self.loader_kwargs)

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        """Augment training batches on the device they train on; val/test/predict batches pass untouched."""
        if self.augment is None or self.trainer is None or not self.trainer.training:
            return batch
        x, *rest = batch
        return (self.augment(x), *rest)

    @property
    def train_targets(self) -> Tensor:
        return self.splits["train"].tensors[1]


def _standardise(tensors: dict[str, list[Tensor]], position: int) -> None:
    """Scale column `position` of every split by the train split's per-feature mean and std (std 0 -> 1)."""
    train = tensors["train"][position]
    mean, std = train.mean(0), train.std(0)
    std = torch.where(std > 0, std, torch.ones_like(std))  # constant features (digits' border pixels)
    for split in tensors.values():
        split[position] = (split[position] - mean) / std
