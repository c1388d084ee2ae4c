"""Data modules: they know nothing of models and expose `num_classes`, `input_shape` and `task` for them."""

from hyperlab.data.arrays import ArrayDataModule, EpochSeededSampler, TensorBatches
from hyperlab.data.tokens import TokenDataModule

__all__ = ["ArrayDataModule", "EpochSeededSampler", "TensorBatches", "TokenDataModule"]
