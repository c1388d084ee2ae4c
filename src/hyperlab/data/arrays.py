"""ArrayDataModule: a dataset that fits in memory as arrays, split, preprocessed and served from tensors."""

import dataclasses
import functools
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, TensorDataset

from hyperlab.data import augment as augmentation
from hyperlab.data import preprocess
from hyperlab.data.batches import EpochSeededSampler, TensorBatches, first_epoch
from hyperlab.data.loading import dataloader_kwargs, fingerprint, grouped
from hyperlab.data.splits import Split, given_split, split_rows


@dataclass(frozen=True)
class Preprocessing:
    """How the arrays become tensors (conf/data/common/arrays.yaml says what each knob does)."""

    normalize: bool = True
    image_shape: Sequence[int] | None = None
    drop_nan_rows: bool = True
    drop_duplicates: bool = False
    imbalance: float | None = None
    outliers: str | None = None
    outlier_fraction: float = 0.05
    sampler: str | None = None
    smooth_sigma: float = 0.0
    encode: Callable | None = None  # a table's encoder factory (hyperlab.data.table.encoder), fitted on train rows
    cache_dir: str | None = None  # where the result is kept; not part of it


@dataclass(frozen=True)
class Loading:
    """How batches are served: the training order, and device-resident tensors or DataLoaders."""

    shuffle: bool = True
    shuffle_seed: int = 0
    device_resident: bool = True
    num_workers: int = 0
    pin_memory: bool = False
    persistent_workers: bool = False
    prefetch_factor: int | None = None


def described(function: Callable) -> str:
    """A loader or encoder as the same text in every process: its dotted name and arguments (a `repr` would
    carry the function's memory address, and the cache key with it)."""
    if isinstance(function, functools.partial):
        arguments = [*map(repr, function.args), *(f"{k}={v!r}" for k, v in sorted(function.keywords.items()))]
        return f"{described(function.func)}({', '.join(arguments)})"
    name = getattr(function, "__qualname__", "<unnamed>")
    # a lambda or a local function has no name to import by: its repr (address included) keeps it apart
    return repr(function) if "<" in name else f"{function.__module__}.{name}"


def files_read_by(load: Callable) -> list[Path]:
    """The files among a loader's arguments (a folder: every file under it), e.g. data=table's path: the cache key
    holds their sizes and times, so an edited file is a new key, not yesterday's tensors."""
    arguments = [*load.args, *load.keywords.values()] if isinstance(load, functools.partial) else []
    paths = [Path(a) for a in arguments if isinstance(a, (str, Path)) and Path(a).exists()]
    return sorted(f for path in paths for f in ([path] if path.is_file() else path.rglob("*")) if f.is_file())


class ArrayDataModule(L.LightningDataModule):
    """A dataset that fits in memory as arrays `(X, y)` or `(X, y, row_weights)`, split into train/val/test.

    `load` is any callable returning those arrays, e.g. `sklearn.datasets.load_digits(return_X_y=True)`.
    The other knobs come flat from the config (`data.val_fraction=...`) and are grouped here: `Split` (which rows:
    hyperlab.data.splits), `Preprocessing` (hyperlab.data.preprocess; statistics from the train split only, so
    nothing leaks from val/test) and `Loading` (device-resident `TensorBatches`, or torch DataLoaders with the
    loader knobs). Their values are checked at config time (hyperlab.config.rules), not here.
    """

    def __init__(
        self,
        load: Callable[[], tuple[np.ndarray, ...]],
        task: str = "classification",
        batch_size: int = 64,
        eval_batch_size: int = 1024,
        augment: Callable[[Tensor], Tensor] | None = None,
        **settings,
    ):
        super().__init__()
        self.load, self.task, self.batch_size, self.eval_batch_size = load, task, batch_size, eval_batch_size
        self.split, self.preprocessing, self.loading = grouped(settings, Split, Preprocessing, Loading)
        self.augment, self.weighted = augment, self.preprocessing.sampler == "weighted"
        self.splits: dict[str, TensorDataset] = {}
        self.cache_hit = False

    @property
    def recipe(self) -> dict:
        """Everything that changes the tensors: the cache key, and the record of how they were made."""
        p = dataclasses.asdict(self.preprocessing)
        del p["cache_dir"]
        p["image_shape"] = list(p["image_shape"]) if p["image_shape"] else None
        p["sampler"] = None if self.weighted else p["sampler"]  # weighted only changes the order
        p["encode"] = described(p["encode"]) if p["encode"] else None
        files = fingerprint([], files_read_by(self.load))
        return {"load": described(self.load), "files": files, "task": self.task, **dataclasses.asdict(self.split), **p}

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
        self.num_classes, self.class_names = state["num_classes"], state.get("class_names")
        self.input_shape = tuple(self.splits["train"].tensors[0].shape[1:])
        self.vocab_size = self.num_classes if self.task == "language_model" else None

    def _cache_file(self) -> Path | None:
        if self.preprocessing.cache_dir is None:
            return None
        key = hashlib.sha256(json.dumps(self.recipe, sort_keys=True).encode()).hexdigest()[:16]
        return Path(self.preprocessing.cache_dir) / f"arrays-{key}.pt"

    def _preprocess(self) -> dict:
        p, seed = self.preprocessing, self.split.split_seed
        (x, y, *rest), given = given_split(self.load())
        y, class_names = preprocess.class_codes(y, self.task)
        weights = rest[0].astype(np.float32) if rest else None
        keep = preprocess.clean(x, y, p.drop_nan_rows, p.drop_duplicates)
        if p.imbalance is not None:
            keep = keep[preprocess.make_imbalanced(y[keep], p.imbalance, seed)]
        x, y, weights = preprocess.take(x, keep), y[keep], None if weights is None else weights[keep]
        given = None if given is None else given[keep]
        indices = split_rows(y, self.split, self.task == "language_model", given)
        x = preprocess.encode(x, indices["train"], p.encode)  # a table's columns, fitted on train rows only
        if p.outliers:
            train = indices["train"]
            indices["train"] = train[preprocess.remove_outliers(x[train], p.outliers, p.outlier_fraction, seed)]
        arrays = {
            name: [x[index], y[index]] + ([] if weights is None else [weights[index]])
            for name, index in indices.items()
        }
        resampled = self.recipe["sampler"]
        if resampled:  # over/under-sampling or SMOTE: the train split only
            if weights is not None:
                raise ValueError(f"data.sampler={resampled} cannot carry per-row weights; use data.sampler=weighted")
            arrays["train"] = list(preprocess.resample(*arrays["train"], resampled, seed))
        if p.image_shape:
            for split in arrays.values():
                split[0] = split[0].reshape(len(split[0]), *p.image_shape)
        tensors = {name: self._tensors(split) for name, split in arrays.items()}
        self._normalise_and_smooth(tensors)
        num_classes = 1 if self.task == "regression" else int(y.max()) + 1
        indices = {name: torch.as_tensor(index) for name, index in indices.items()}
        return {"indices": indices, "splits": tensors, "num_classes": num_classes, "class_names": class_names}

    def _normalise_and_smooth(self, tensors: dict[str, list[Tensor]]) -> None:
        if self.preprocessing.normalize:
            _standardise(tensors, 0)
            if self.task == "regression":
                _standardise(tensors, 1)
        if self.preprocessing.smooth_sigma:
            for split in tensors.values():
                split[0] = torch.from_numpy(preprocess.smooth_images(split[0].numpy(), self.preprocessing.smooth_sigma))

    def _tensors(self, arrays: list[np.ndarray]) -> list[Tensor]:
        features, targets, *weights = arrays
        x_dtype = torch.long if self.task == "language_model" else torch.float32
        y_dtype = torch.float32 if self.task == "regression" else torch.long
        out = [torch.as_tensor(features, dtype=x_dtype), torch.as_tensor(targets, dtype=y_dtype)]
        return out + [torch.as_tensor(w, dtype=torch.float32) for w in weights]

    # --- serving batches -----------------------------------------------------------------------------------------

    def train_dataloader(self):
        data = self.splits["train"]
        weights = None
        if self.weighted:  # class-balanced draws with replacement
            weights = torch.as_tensor(preprocess.balanced_weights(data.tensors[1].numpy()))
        # debug=overfit trains on the first batch again and again: Lightning cannot switch our sampler off itself
        overfit = self.trainer is not None and self.trainer.overfit_batches > 0
        random_order = (self.loading.shuffle or self.weighted) and not overfit
        epoch = first_epoch(self.trainer)  # see EpochSeededSampler
        sampler = EpochSeededSampler(len(data), self.loading.shuffle_seed, weights, epoch) if random_order else None
        return self._loader(data, sampler)

    def split_sizes(self) -> dict[str, int]:
        return {name: len(data) for name, data in self.splits.items()}

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
        if self.loading.device_resident:
            device = trainer.strategy.root_device if trainer is not None else torch.device("cpu")
            tensors = [t.to(device) for t in data.tensors]
            rank, world = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
            return TensorBatches(tensors, batch_size, sampler, rank, world)
        # Each DataLoader iterator draws a base seed from its generator; with the default (global) RNG that
        # draw would shift dropout masks, and a resumed run, whose first iterator is built before the RNG is
        # restored, would drift from an unbroken one. A generator of its own leaves the global RNG to the model.
        generator = torch.Generator().manual_seed(self.loading.shuffle_seed)
        knobs = self.loading
        workers = dataloader_kwargs(
            knobs.num_workers, knobs.pin_memory, knobs.persistent_workers, knobs.prefetch_factor
        )
        return DataLoader(data, batch_size=batch_size, sampler=sampler, generator=generator, **workers)

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        return augmentation.on_training_batches(self.augment, self.trainer, batch)

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
