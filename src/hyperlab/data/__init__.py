"""Data modules: what a network trains on. They know nothing of models; they expose the facts a network needs
(hyperlab.contracts.DataModule)."""

from hyperlab.data.arrays import ArrayDataModule
from hyperlab.data.batches import EpochSeededSampler, TensorBatches
from hyperlab.data.tokens import TokenDataModule

__all__ = ["ArrayDataModule", "EpochSeededSampler", "TensorBatches", "TokenDataModule"]
