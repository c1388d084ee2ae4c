"""Data modules: they know nothing of models and expose `num_classes` and `input_shape` for them."""

from hyperlab.data.arrays import ArrayDataModule, EpochSeededSampler

__all__ = ["ArrayDataModule", "EpochSeededSampler"]
