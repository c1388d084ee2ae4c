"""Serving batches from tensors in memory: an epoch-seeded order, and batches cut by indexing device tensors."""

import math
from collections.abc import Iterator, Sequence

import torch
from torch import Tensor
from torch.utils.data import Sampler


class EpochSeededSampler(Sampler[int]):
    """A random order per epoch that depends only on (seed, epoch): a permutation, or with `weights` a draw of
    `num_samples` indices with replacement, index i drawn with probability proportional to weights[i].

    Lightning calls `set_epoch` at every epoch start, so a run resumed at epoch k sees exactly the order an
    unbroken run saw at epoch k (torch's RandomSampler draws from the global RNG, which a resume resets). A data
    module starts it at the trainer's current epoch (`epoch`): a DataLoader with worker processes draws its first
    indices when its iterator is made, which Lightning does before the first `set_epoch` of a fit, so a resumed
    run would otherwise serve its first epoch in epoch 0's order.
    """

    def __init__(self, num_samples: int, seed: int, weights: Tensor | None = None, epoch: int = 0):
        self.num_samples, self.seed, self.weights, self.epoch = num_samples, seed, weights, epoch

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


def first_epoch(trainer) -> int:
    """The epoch Lightning's fit loop sets on the sampler first (`epoch_progress.current.processed`, what its own
    `set_epoch` call passes): 0 for a new run, k for a run resumed after k epochs."""
    return trainer.fit_loop.epoch_progress.current.processed if trainer is not None else 0


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
