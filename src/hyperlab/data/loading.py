"""Serving the splits of a dataset that stays on disk (an image folder, a table's shard): its loader knobs as one
settings group, and the dataloaders of its `Subset` splits, shared by those data modules."""

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Subset

from hyperlab.data.batches import EpochSeededSampler, first_epoch


def dataloader_kwargs(num_workers: int, pin_memory: bool, persistent_workers: bool, prefetch_factor) -> dict:
    """A DataLoader's worker knobs: persistence and prefetching only where there are worker processes."""
    prefetch = {"prefetch_factor": prefetch_factor} if num_workers else {}
    persistent = persistent_workers and num_workers > 0
    return {"num_workers": num_workers, "pin_memory": pin_memory, "persistent_workers": persistent, **prefetch}


def fingerprint(settings, files: list[Path]) -> str:
    """A cache key of `settings` (JSON) and the files' names, sizes and modification times: a changed file, or
    another setting, is another key."""
    digest = hashlib.sha256(json.dumps(settings, default=str).encode())
    for file in files:
        stat = file.stat()
        digest.update(f"{file}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def grouped(settings: dict, *groups: type) -> list:
    """Flat `data.*` knobs as one dataclass per group; a knob no group has is refused, not dropped."""
    names = [{f.name for f in dataclasses.fields(group)} for group in groups]
    unknown = sorted(set(settings) - set().union(*names))
    if unknown:  # worded as Python words it for a signature, which config.key_errors attributes to the key
        raise TypeError(f"got an unexpected keyword argument {unknown[0]!r}")
    return [
        group(**{k: v for k, v in settings.items() if k in keys}) for group, keys in zip(groups, names, strict=True)
    ]


@dataclass(frozen=True)
class Loader:
    """DataLoader knobs of a streamed data module (conf/data/images.yaml documents each)."""

    batch_size: int = 64
    eval_batch_size: int = 256
    num_workers: int = 2
    pin_memory: bool = False
    persistent_workers: bool = True
    prefetch_factor: int | None = None
    shuffle_seed: int = 0

    def kwargs(self) -> dict:
        return dataloader_kwargs(self.num_workers, self.pin_memory, self.persistent_workers, self.prefetch_factor)


class ShardRows(Dataset):
    """(row, target) of a memory-mapped shard (an image, a table's encoded row): a copy of its bytes, nothing
    decoded; a batch's rows are read with one fancy index (`__getitems__`)."""

    def __init__(self, features: np.memmap, targets: np.ndarray):
        self.features, self.targets = features, targets

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        return torch.from_numpy(np.array(self.features[i])), torch.as_tensor(self.targets[i])

    def __getitems__(self, rows: list[int]) -> list[tuple[Tensor, Tensor]]:
        x, y = torch.from_numpy(self.features[rows]), torch.as_tensor(self.targets[rows])
        return list(zip(x, y, strict=True))


class StreamedSplits:
    """The dataloaders of `self.splits` (train / val / test `Subset`s), with `self.loading` (a Loader) and
    `self.batch_size` (which Lightning's tuner may change); mixed into a LightningDataModule."""

    splits: dict[str, Subset]
    loading: Loader
    batch_size: int

    def split_sizes(self) -> dict[str, int]:
        return {name: len(data) for name, data in self.splits.items()}

    def train_dataloader(self) -> DataLoader:
        overfit = self.trainer is not None and self.trainer.overfit_batches > 0
        epoch = first_epoch(self.trainer)  # see EpochSeededSampler
        order = EpochSeededSampler(len(self.splits["train"]), self.loading.shuffle_seed, epoch=epoch)
        return self._loader(self.splits["train"], self.batch_size, None if overfit else order)

    def val_dataloader(self):
        return [] if len(self.splits["val"]) == 0 else self._loader(self.splits["val"], self.loading.eval_batch_size)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.splits["test"], self.loading.eval_batch_size)

    def predict_dataloader(self) -> DataLoader:
        return self.test_dataloader()

    def _loader(self, data: Dataset, batch_size: int, sampler=None) -> DataLoader:
        # a generator of its own: the loader's base-seed draw leaves the global RNG (dropout) alone, as in arrays.py
        generator = torch.Generator().manual_seed(self.loading.shuffle_seed)
        return DataLoader(data, batch_size=batch_size, sampler=sampler, generator=generator, **self.loading.kwargs())
