"""Data knobs: split sizes and stratification, train-only normalisation, shuffling, batch size, loader knobs."""

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from hyperlab.data import ArrayDataModule, EpochSeededSampler


def digits(**kwargs) -> ArrayDataModule:
    dm = ArrayDataModule(lambda: load_digits(return_X_y=True), **kwargs)
    dm.setup("fit")
    return dm


def test_split_sizes_are_disjoint_and_cover_the_data():
    dm = digits(val_fraction=0.1, test_fraction=0.2)
    sizes = {k: len(v) for k, v in dm.indices.items()}
    assert sizes == {"train": 1257, "val": 180, "test": 360}
    joined = np.concatenate(list(dm.indices.values()))
    assert len(np.unique(joined)) == len(joined) == 1797


def test_stratified_split_keeps_class_ratios():
    _, y = load_digits(return_X_y=True)
    dm = digits(val_fraction=0.1, test_fraction=0.2, stratify=True)
    overall = np.bincount(y) / len(y)
    for idx in dm.indices.values():
        assert np.abs(np.bincount(y[idx], minlength=10) / len(idx) - overall).max() < 0.01
    loose = digits(val_fraction=0.1, test_fraction=0.2, stratify=False)
    assert max(np.abs(np.bincount(y[i], minlength=10) / len(i) - overall).max() for i in loose.indices.values()) > 0.01


def test_split_seed_changes_the_split_and_is_reproducible():
    assert np.array_equal(digits(split_seed=0).indices["test"], digits(split_seed=0).indices["test"])
    assert not np.array_equal(digits(split_seed=0).indices["test"], digits(split_seed=1).indices["test"])


def test_normalisation_uses_train_statistics_only():
    dm = digits(normalize=True)
    train_x = dm.splits["train"].tensors[0].flatten(1)
    varying = train_x.std(0) > 0
    assert torch.allclose(train_x.mean(0), torch.zeros(64), atol=1e-5)
    assert torch.allclose(train_x.std(0)[varying], torch.ones(int(varying.sum())), atol=1e-4)
    test_x = dm.splits["test"].tensors[0].flatten(1)
    assert test_x.mean(0).abs().max() > 0.01  # test is scaled with train stats, not re-centred on itself
    raw = digits(normalize=False).splits["train"].tensors[0]
    assert raw.max().item() == 16.0


def test_image_shape_and_facts_for_models():
    assert digits(image_shape=[1, 8, 8]).input_shape == (1, 8, 8)
    dm = digits()
    assert (dm.input_shape, dm.num_classes) == ((64,), 10)


@pytest.mark.parametrize("batch_size", [1, 32, 100])
def test_batch_size_sets_batch_shape_and_steps_per_epoch(batch_size):
    loader = digits(batch_size=batch_size).train_dataloader()
    assert next(iter(loader))[0].shape == (batch_size, 64)
    assert len(loader) == -(-1257 // batch_size)


def test_shuffle_differs_per_epoch_and_is_fixed_when_off():
    loader = digits(shuffle=True, shuffle_seed=3).train_dataloader()
    loader.sampler.set_epoch(0)
    epoch0 = torch.cat([y for _, y in loader])
    loader.sampler.set_epoch(1)
    epoch1 = torch.cat([y for _, y in loader])
    loader.sampler.set_epoch(0)
    assert torch.equal(torch.cat([y for _, y in loader]), epoch0)  # resumable: depends on (seed, epoch) only
    assert not torch.equal(epoch0, epoch1)
    fixed = digits(shuffle=False).train_dataloader()
    assert torch.equal(torch.cat([y for _, y in fixed]), torch.cat([y for _, y in fixed]))
    assert torch.equal(torch.cat([y for _, y in fixed]), digits(shuffle=False).splits["train"].tensors[1])


def test_sampler_is_a_permutation():
    sampler = EpochSeededSampler(50, seed=0)
    assert sorted(sampler) == list(range(50)) and len(sampler) == 50


def test_loader_knobs_reach_the_dataloader():
    loader = digits(
        device_resident=False, num_workers=2, pin_memory=True, persistent_workers=True, prefetch_factor=4
    ).train_dataloader()
    assert (loader.num_workers, loader.pin_memory, loader.persistent_workers, loader.prefetch_factor) == (
        2,
        True,
        True,
        4,
    )
    loader = digits(device_resident=False, num_workers=0, persistent_workers=True).train_dataloader()
    assert loader.persistent_workers is False and loader.prefetch_factor is None


def test_bad_fractions_are_rejected():
    with pytest.raises(ValueError, match=r"data.val_fraction=0.5 \+ data.test_fraction=0.5 must be < 1"):
        ArrayDataModule(lambda: None, val_fraction=0.5, test_fraction=0.5)


def test_k_folds_partition_train_and_val_and_keep_the_test_split():
    _, y = load_digits(return_X_y=True)
    plain = digits()
    folds = [digits(num_folds=5, fold=k) for k in range(5)]
    vals = [f.indices["val"] for f in folds]
    pool = np.sort(np.concatenate([plain.indices["train"], plain.indices["val"]]))
    assert np.array_equal(np.sort(np.concatenate(vals)), pool)  # the val folds cover train + val exactly once
    for f in folds:
        assert np.array_equal(f.indices["test"], plain.indices["test"])
        assert not set(f.indices["train"]) & set(f.indices["val"])
        assert len(f.indices["train"]) + len(f.indices["val"]) == len(pool)
        assert (
            np.abs(
                np.bincount(y[f.indices["val"]], minlength=10) / len(f.indices["val"])
                - np.bincount(y[pool], minlength=10) / len(pool)
            ).max()
            < 0.01
        )  # stratified


def test_bad_fold_settings_are_rejected():
    with pytest.raises(ValueError, match=r"data.num_folds=5 needs >= 2 folds and data.fold in \[0, 5\)"):
        ArrayDataModule(lambda: None, num_folds=5, fold=5)
