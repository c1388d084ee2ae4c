"""Data knobs: split sizes and stratification, train-only normalisation, shuffling, batch size, loader knobs."""

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from hyperlab.config.rules import check
from hyperlab.data import ArrayDataModule, EpochSeededSampler
from hyperlab.errors import ConfigError


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


def test_bad_fractions_are_rejected(make_cfg):
    with pytest.raises(ConfigError, match=r"data.val_fraction=0.5 \+ data.test_fraction=0.5 must sum to < 1"):
        check(make_cfg("data.val_fraction=0.5", "data.test_fraction=0.5"))


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


def test_bad_fold_settings_are_rejected(make_cfg):
    with pytest.raises(
        ConfigError, match=r"data.fold=5 is not allowed: must be null or an integer in \[0, data.num_folds\)"
    ):
        check(make_cfg("data.num_folds=5", "data.fold=5"))


# --- serving batches: device-resident tensors vs DataLoader -------------------------------------------------------


def test_device_resident_batches_equal_the_dataloader_batches():
    from hyperlab.data import TensorBatches

    fast, slow = digits(device_resident=True, batch_size=100), digits(device_resident=False, batch_size=100)
    fast_loader, slow_loader = fast.train_dataloader(), slow.train_dataloader()
    assert isinstance(fast_loader, TensorBatches) and isinstance(slow_loader, torch.utils.data.DataLoader)
    for epoch in (0, 3):
        fast_loader.sampler.set_epoch(epoch)
        slow_loader.sampler.set_epoch(epoch)
        fast_batches, slow_batches = list(fast_loader), list(slow_loader)
        assert len(fast_batches) == len(slow_batches) == len(fast_loader) == 13
        for (fx, fy), (sx, sy) in zip(fast_batches, slow_batches, strict=True):
            assert torch.equal(fx, sx) and torch.equal(fy, sy)
    val = list(fast.val_dataloader())  # in order: contiguous slices
    assert torch.equal(torch.cat([x for x, _ in val]), fast.splits["val"].tensors[0])


def test_device_resident_batches_shard_across_ranks():
    from hyperlab.data import EpochSeededSampler, TensorBatches

    x = torch.arange(11)
    shards = [list(TensorBatches([x], 2, EpochSeededSampler(11, 0), rank, 2)) for rank in (0, 1)]
    seen = [torch.cat([b[0] for b in shard]) for shard in shards]
    assert len(seen[0]) == len(seen[1]) == 6 and len(shards[0]) == 3  # padded to 12, as DistributedSampler does
    assert set(seen[0].tolist()) | set(seen[1].tolist()) == set(range(11))


# --- imbalance, resampling, cleaning, outliers, smoothing -----------------------------------------------------------


def class_counts(dm: ArrayDataModule, split: str = "train") -> np.ndarray:
    return np.bincount(dm.splits[split].tensors[1].numpy(), minlength=10)


def test_imbalance_makes_a_long_tail():
    counts = np.bincount(digits(imbalance=0.1, stratify=True).splits["train"].tensors[1].numpy())
    assert counts[0] > 100 and counts[9] < 0.15 * counts[0]  # class c keeps 0.1^(c/9) of its rows
    assert len(digits().splits["train"]) == 1257 > len(digits(imbalance=0.1).splits["train"])


def test_weighted_sampler_balances_the_classes_seen_in_an_epoch():
    dm = digits(imbalance=0.1, sampler="weighted")
    assert class_counts(dm)[9] < 0.2 * class_counts(dm)[0]
    seen = np.bincount(torch.cat([y for _, y in dm.train_dataloader()]).numpy(), minlength=10)
    assert seen.sum() == len(dm.splits["train"]) and seen.min() > 0.5 * seen.max()  # ~uniform draws
    plain = np.bincount(torch.cat([y for _, y in digits(imbalance=0.1).train_dataloader()]).numpy(), minlength=10)
    assert plain.min() < 0.2 * plain.max()


@pytest.mark.parametrize("method", ["oversample", "undersample", "smote"])
def test_resampling_balances_the_train_split_only(method):
    dm, plain = digits(imbalance=0.2, sampler=method), digits(imbalance=0.2)
    counts = class_counts(dm)
    assert counts.min() == counts.max()
    assert counts[0] == class_counts(plain).max() if method != "undersample" else counts[0] == class_counts(plain).min()
    for split in ("val", "test"):  # the same rows (standardised with the resampled train statistics)
        assert np.array_equal(dm.indices[split], plain.indices[split])
        assert torch.equal(dm.splits[split].tensors[1], plain.splits[split].tensors[1])
    if method == "smote":  # synthetic rows: not copies of existing ones
        raw, raw_plain = digits(imbalance=0.2, sampler=method, normalize=False), digits(imbalance=0.2, normalize=False)
        rows = {tuple(r) for r in raw_plain.splits["train"].tensors[0].flatten(1).tolist()}
        new = [tuple(r) for r in raw.splits["train"].tensors[0].flatten(1).tolist() if tuple(r) not in rows]
        assert len(new) == counts.sum() - class_counts(plain).sum()


def test_outlier_removal_drops_train_rows_only():
    dm, plain = digits(outliers="isolation_forest", outlier_fraction=0.1), digits()
    assert len(dm.splits["train"]) == pytest.approx(0.9 * len(plain.splits["train"]), abs=2)
    assert set(dm.indices["train"]) < set(plain.indices["train"])
    assert np.array_equal(dm.indices["test"], plain.indices["test"])


def test_cleaning_drops_nan_rows_and_duplicates():
    x = np.arange(40, dtype=float).reshape(20, 2)
    x[3, 1] = np.nan
    x[7] = x[6]  # a duplicate of row 6
    y = np.arange(20) % 2

    def rows(**kwargs) -> int:
        dm = ArrayDataModule(lambda: (x, y), stratify=False, val_fraction=0.2, test_fraction=0.2, **kwargs)
        dm.setup()
        return sum(len(s) for s in dm.splits.values())

    assert rows() == 19 and rows(drop_duplicates=True) == 18 and rows(drop_nan_rows=False) == 20


def test_gaussian_smoothing_blurs_images_and_needs_an_image(make_cfg):
    raw, smooth = (
        digits(image_shape=[1, 8, 8], normalize=False),
        digits(image_shape=[1, 8, 8], normalize=False, smooth_sigma=1.0),
    )
    a, b = raw.splits["train"].tensors[0], smooth.splits["train"].tensors[0]
    neighbours = lambda t: (t[..., 1:] - t[..., :-1]).abs().mean()  # noqa: E731
    assert neighbours(b) < 0.6 * neighbours(a)  # smoother
    assert b.mean().item() == pytest.approx(a.mean().item(), rel=0.02)  # a blur keeps the mass
    with pytest.raises(ConfigError, match="data.smooth_sigma=1.0 blurs images: it needs data.image_shape"):
        check(make_cfg("data=breast_cancer", "data.smooth_sigma=1.0"))


def test_row_weights_from_the_data_reach_the_batches():
    x, y = load_digits(return_X_y=True)
    w = np.linspace(0.5, 2.0, len(y))
    dm = ArrayDataModule(lambda: (x, y, w), batch_size=8)
    dm.setup()
    xb, yb, wb = next(iter(dm.train_dataloader()))
    order = dm.train_dataloader().sampler.order()[:8]
    assert torch.allclose(wb, torch.as_tensor(w[dm.indices["train"][order]], dtype=torch.float32))


# --- tasks, synthetic data, caching ---------------------------------------------------------------------------------


def test_regression_target_is_standardised_with_train_statistics(make_cfg):
    from sklearn.datasets import load_diabetes

    dm = ArrayDataModule(lambda: load_diabetes(return_X_y=True), task="regression", stratify=False)
    dm.setup()
    y = dm.splits["train"].tensors[1]
    assert y.dtype == torch.float32 and dm.num_classes == 1
    assert abs(y.mean().item()) < 1e-5 and y.std().item() == pytest.approx(1.0, rel=1e-4)
    for key in ("data.stratify=true", "data.sampler=weighted", "data.imbalance=0.5"):
        with pytest.raises(ConfigError, match=f"{key.split('=')[0]}=.* needs class labels, but data.task=regression"):
            check(make_cfg("data=diabetes", "loss=mse", "optimized_metric=val/r2", key))


def test_text_windows_split_contiguously_with_a_character_vocabulary(make_cfg):
    from hydra.utils import instantiate

    dm = instantiate(make_cfg("data=text", "model=lstm").data)
    dm.setup()
    x, y = dm.splits["train"].tensors
    assert x.dtype == torch.long and torch.equal(x[:, 1:], y[:, :-1])  # y is x shifted by one character
    assert dm.vocab_size == dm.num_classes == 92 and dm.input_shape == (64,)
    train, val, test = (dm.indices[s] for s in ("train", "val", "test"))
    assert train.max() < val.min() and val.max() < test.min()  # train text, then val text, then test text


def test_synthetic_data_is_seeded(make_cfg):
    from hydra.utils import instantiate

    def first_rows(*overrides):
        dm = instantiate(make_cfg("data=synthetic", *overrides).data)
        dm.setup()
        return dm.splits["train"].tensors[0][:5], dm.num_classes, dm.input_shape

    a, classes, shape = first_rows()
    assert (classes, shape) == (4, (20,))
    assert torch.equal(a, first_rows()[0])
    assert not torch.equal(a, first_rows("data.load.random_state=1")[0])
    assert first_rows("data.load.n_features=8", "data.load.n_informative=4", "data.load.n_redundant=2")[2] == (8,)


def test_cache_dir_keeps_preprocessed_tensors_keyed_by_the_preprocessing(tmp_path):
    calls = []

    def load():
        calls.append(1)
        return load_digits(return_X_y=True)

    def make(**kwargs):
        dm = ArrayDataModule(load, cache_dir=str(tmp_path), **kwargs)
        dm.setup()
        return dm

    first, second = make(), make()
    assert len(calls) == 1 and (first.cache_hit, second.cache_hit) == (False, True)
    assert torch.equal(first.splits["train"].tensors[0], second.splits["train"].tensors[0])
    assert np.array_equal(first.indices["test"], second.indices["test"])
    assert make(batch_size=7).cache_hit  # serving knobs do not change the tensors
    assert not make(split_seed=1).cache_hit and len(calls) == 2  # preprocessing knobs do
    assert len(list(tmp_path.glob("arrays-*.pt"))) == 2
    torch.load(next(tmp_path.glob("arrays-*.pt")), weights_only=True)  # no pickle needed to read it


# --- augmentation ---------------------------------------------------------------------------------------------------


def test_augmentation_changes_training_batches_only():
    from types import SimpleNamespace

    from hyperlab.data.augment import ImageAugmentation

    torch.manual_seed(0)
    dm = digits(image_shape=[1, 8, 8], augment=ImageAugmentation(rotation=20, translate=0.1, erasing=1.0))
    batch = next(iter(dm.train_dataloader()))
    dm.trainer = SimpleNamespace(training=True)
    x, y = dm.on_after_batch_transfer(batch, 0)
    assert x.shape == batch[0].shape and torch.equal(y, batch[1])
    changed = (x - batch[0]).flatten(1).abs().sum(1) > 1e-3
    assert changed.all()  # erasing with p=1 touches every image
    dm.trainer = SimpleNamespace(training=False)  # validating / testing
    assert dm.on_after_batch_transfer(batch, 0)[0] is batch[0]
    identity = ImageAugmentation()
    assert torch.equal(identity(batch[0]), batch[0]) and len(identity.pipeline) == 0


@pytest.mark.parametrize(
    ("knob", "kornia_name"),
    [
        ({"hflip": 0.5}, "RandomHorizontalFlip"),
        ({"vflip": 0.5}, "RandomVerticalFlip"),
        ({"rotation": 10.0}, "RandomAffine"),
        ({"translate": 0.1}, "RandomAffine"),
        ({"scale": (0.8, 1.2)}, "RandomAffine"),
        ({"crop_scale": (0.5, 1.0)}, "RandomResizedCrop"),
        ({"erasing": 0.5}, "RandomErasing"),
    ],
)
def test_each_augmentation_knob_adds_its_transform(knob, kornia_name):
    from hyperlab.data.augment import ImageAugmentation

    augment = ImageAugmentation(**knob)
    torch.manual_seed(0)
    x = torch.randn(64, 1, 8, 8)
    out = augment(x)
    assert [type(m).__name__ for m in augment.pipeline] == [kornia_name]
    assert out.shape == x.shape and not torch.equal(out, x)


def test_refit_trains_on_train_and_val_and_keeps_the_test_split():
    plain, refit = digits(), digits(refit=True)
    pool = np.sort(np.concatenate([plain.indices["train"], plain.indices["val"]]))
    assert np.array_equal(refit.indices["train"], pool)
    assert np.array_equal(refit.indices["test"], plain.indices["test"])
    assert len(refit.splits["train"]) == 1437 and len(refit.splits["val"]) == 0  # 1797 rows - 360 test
    assert refit.val_dataloader() == []  # Lightning runs no validation


def test_outer_folds_partition_the_data_into_test_splits():
    _, y = load_digits(return_X_y=True)
    outer = [digits(outer_folds=5, outer_fold=k) for k in range(5)]
    tests = [o.indices["test"] for o in outer]
    assert np.array_equal(np.sort(np.concatenate(tests)), np.arange(len(y)))  # every row tested exactly once
    for o in outer:
        train, val, test = (set(o.indices[s]) for s in ("train", "val", "test"))
        assert not (train & val or train & test or val & test) and len(train | val | test) == len(y)
        assert len(val) == round(0.1 * len(y))
    # inner folds and the refit work inside an outer fold: its test split never moves
    inner = digits(outer_folds=5, outer_fold=2, num_folds=3, fold=1)
    assert np.array_equal(inner.indices["test"], tests[2])
    assert np.array_equal(digits(outer_folds=5, outer_fold=2, refit=True).indices["test"], tests[2])


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["data.refit=true"], "data.refit=true leaves no val split, but optimized_metric=val/acc"),
        (
            ["data.refit=true", "optimized_metric=null"],
            "data.refit=true leaves no val split, but callbacks.model_checkpoint.monitor=val/loss",
        ),
        (["data.refit=true", "data.num_folds=5"], "data.refit=true trains on train \\+ val as one split"),
        (["data.outer_folds=5"], "data.outer_folds and data.outer_fold are set together"),
        (["data.outer_folds=5", "data.outer_fold=5"], "data.outer_fold=5 is not allowed"),
    ],
)
def test_bad_refit_and_outer_fold_settings_are_refused_before_training(make_cfg, overrides, message):
    from hyperlab.config.rules import check
    from hyperlab.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        check(make_cfg(*overrides))


# --- given splits: a dataset's own train/test split kept row for row ----------------------------------------------


def given_digits(with_val: bool = False):
    """digits' first 1000 rows as the given train split, the rest as test (and 150 rows as val when asked)."""
    x, y = load_digits(return_X_y=True)
    splits = {"train": (x[:1000], y[:1000]), "test": (x[1000:], y[1000:])}
    if with_val:
        splits = {"train": (x[:850], y[:850]), "val": (x[850:1000], y[850:1000]), "test": (x[1000:], y[1000:])}
    return lambda: splits


def test_a_given_test_split_is_kept_row_for_row_and_val_is_drawn_from_train():
    x, _ = load_digits(return_X_y=True)
    dm = ArrayDataModule(given_digits(), normalize=False)
    dm.setup()
    assert np.array_equal(dm.indices["test"], np.arange(1000, 1797))  # every given test row, in order
    assert torch.equal(dm.splits["test"].tensors[0], torch.as_tensor(x[1000:], dtype=torch.float32))
    assert len(dm.indices["val"]) == 100 and len(dm.indices["train"]) == 900  # data.val_fraction of the given train
    assert set(dm.indices["val"]) | set(dm.indices["train"]) == set(range(1000))
    assert dm.split_sizes() == {"train": 900, "val": 100, "test": 797}


def test_a_given_val_split_is_kept_too():
    dm = ArrayDataModule(given_digits(with_val=True), normalize=False)
    dm.setup()
    assert [list(dm.indices[s]) for s in ("train", "val", "test")] == [
        list(range(850)),
        list(range(850, 1000)),
        list(range(1000, 1797)),
    ]


def test_folds_refit_and_outer_folds_work_over_the_rows_not_given_as_test():
    folds = [ArrayDataModule(given_digits(), num_folds=4, fold=k) for k in range(4)]
    for dm in folds:
        dm.setup()
        assert np.array_equal(dm.indices["test"], np.arange(1000, 1797))
    assert np.array_equal(np.sort(np.concatenate([f.indices["val"] for f in folds])), np.arange(1000))
    refit = ArrayDataModule(given_digits(), refit=True)
    refit.setup()
    assert np.array_equal(refit.indices["train"], np.arange(1000)) and len(refit.indices["val"]) == 0
    outer = [ArrayDataModule(given_digits(), outer_folds=4, outer_fold=k) for k in range(4)]
    for dm in outer:
        dm.setup()
    assert np.array_equal(np.sort(np.concatenate([o.indices["test"] for o in outer])), np.arange(1000))


def test_a_mapping_without_a_test_split_is_refused():
    x, y = load_digits(return_X_y=True)
    with pytest.raises(ValueError, match="a mapping of given splits has keys train and test"):
        ArrayDataModule(lambda: {"train": (x, y), "holdout": (x, y)}).setup()


def resumed_trainer(epochs_done: int):
    """What a data module reads of a trainer resumed after `epochs_done` epochs (hyperlab.data.batches.first_epoch)."""
    from types import SimpleNamespace

    progress = SimpleNamespace(current=SimpleNamespace(processed=epochs_done))
    return SimpleNamespace(
        fit_loop=SimpleNamespace(epoch_progress=progress), overfit_batches=0,
        strategy=SimpleNamespace(root_device=torch.device("cpu")), global_rank=0, world_size=1,
    )  # fmt: skip


@pytest.mark.parametrize("device_resident", [True, False])
def test_a_loader_made_for_a_resumed_run_serves_that_epochs_order_first(device_resident):
    """A DataLoader with workers draws its first indices before Lightning's first set_epoch: the sampler must start
    at the resumed epoch, or epoch 2 of a resumed run is served in epoch 0's order."""
    dm = digits(device_resident=device_resident, batch_size=32, shuffle_seed=5)
    dm.trainer = resumed_trainer(2)
    loader = dm.train_dataloader()
    expected = EpochSeededSampler(len(dm.splits["train"]), 5, epoch=2).order()[:32]
    assert loader.sampler.epoch == 2
    assert torch.equal(next(iter(loader))[1], dm.splits["train"].tensors[1][expected])


def test_a_ucr_problem_comes_from_aeons_package_with_its_official_split(make_cfg):
    """ItalyPowerDemand: 67 train and 1029 test series of 24 steps, 2 classes (the archive's figures)."""
    from hyperlab.builders.module import build_datamodule
    from hyperlab.data.signals import load_ucr

    given = load_ucr("ItalyPowerDemand")
    assert given["train"][0].shape == (67, 1, 24) and given["test"][0].shape == (1029, 1, 24)
    assert given["train"][0].dtype == np.float32 and sorted(set(given["train"][1])) == ["1", "2"]
    dm = build_datamodule(make_cfg("data=ucr").data, None)
    assert dm.input_shape == (1, 24) and dm.num_classes == 2
    assert dm.split_sizes()["test"] == 1029 and dm.split_sizes()["train"] + dm.split_sizes()["val"] == 67
    with pytest.raises(
        ValueError, match=r"data.load.name='ItalyPower': not among the problems aeon ships: .*BasicMotions"
    ):
        load_ucr("ItalyPower")
