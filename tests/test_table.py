"""data=table: a user's CSV / Parquet / JSON-lines file with string categories and missing values."""

import csv
import json

import numpy as np
import pandas as pd
import pytest
import torch
from hydra.utils import instantiate

from hyperlab.builders import build_module
from hyperlab.config.rules import check
from hyperlab.contracts import DataModule, TensorSplits
from hyperlab.errors import ConfigError
from hyperlab.evaluate import write_predictions
from hyperlab.train import train


def write(frame: pd.DataFrame, path) -> str:
    {
        ".csv": lambda: frame.to_csv(path, index=False),
        ".parquet": lambda: frame.to_parquet(path),
        ".jsonl": lambda: frame.to_json(path, orient="records", lines=True),
    }[path.suffix]()
    return str(path)


def churn(n: int = 600, seed: int = 0) -> pd.DataFrame:
    """A label carried by a string category (colour == red) and a number (size > 1), 5% of cells missing."""
    rng = np.random.default_rng(seed)
    colour = rng.choice(["red", "green", "blue", "black"], n)
    size = rng.normal(0, 1, n)
    frame = pd.DataFrame(
        {"colour": colour, "size": size, "label": np.where((colour == "red") | (size > 1), "yes", "no")}
    )
    for column in ("colour", "size"):
        frame.loc[rng.random(n) < 0.05, column] = None
    return frame


def features(dm, split: str = "train") -> torch.Tensor:
    """A split's encoded rows, from memory or from the shard."""
    if isinstance(dm, TensorSplits):
        return dm.splits[split].tensors[0]
    rows = dm.splits[split]
    return dm.on_after_batch_transfer(next(iter(dm._loader(rows, len(rows)))), 0)[0]


def datamodule(make_cfg, path, *overrides):
    dm = instantiate(make_cfg("data=table", f"data.path={path}", "data.target=label", *overrides).data)
    dm.setup()
    return dm


def test_categories_and_missing_values_reach_the_model_as_documented(make_cfg, tmp_path):
    dm = datamodule(make_cfg, write(churn(), tmp_path / "t.csv"), "data.normalize=false")
    # size (1) + its missing indicator (1) + colour one-hot over black, blue, green, red and "missing" (5)
    assert dm.input_shape == (7,)
    assert dm.class_names == ["no", "yes"] and dm.num_classes == 2
    x = dm.splits["train"].tensors[0]
    assert torch.all(x[:, 2:].sum(1) == 1)  # exactly one colour level per row, "missing" included


@pytest.mark.parametrize("convert", [False, True])
def test_imputation_statistics_come_from_the_train_rows_only(make_cfg, tmp_path, convert):
    frame = pd.DataFrame(
        {
            "size": [1.0, 2.0, 3.0, None, 100.0, 100.0, None, 1.0, 2.0, 3.0],
            "colour": ["a", "b", "a", "b", "zebra", "a", "b", "a", "b", "a"],
            "label": ["x", "y", "x", "y", "x", "y", "x", "y", "x", "y"],
            "split": ["train", "train", "train", "train", "test", "test", "test", "val", "val", "val"],
        }
    )
    settings = ["data.split_column=split", "data.normalize=false", "data.min_frequency=1", f"data.convert={convert}"]
    dm = datamodule(make_cfg, write(frame, tmp_path / "t.csv"), *settings, f"data.cache_dir={tmp_path}")
    test_x = features(dm, "test")
    assert test_x[:, 0].tolist() == [100.0, 100.0, 2.0]  # the missing size takes the train median (2.0), not 100
    assert test_x[:, 1].tolist() == [0.0, 0.0, 1.0]  # the missing-value indicator
    assert test_x[0, 2:].tolist() == [0.0, 0.0]  # "zebra", a level train never saw: all zeros
    assert dm.split_sizes() == {"train": 4, "val": 3, "test": 3}


@pytest.mark.parametrize("suffix", [".parquet", ".jsonl"])
def test_parquet_and_json_lines_read_as_the_csv_does(make_cfg, tmp_path, suffix):
    frame = churn()
    from_csv = datamodule(make_cfg, write(frame, tmp_path / "t.csv"))
    other = datamodule(make_cfg, write(frame, tmp_path / f"t{suffix}"))
    for split in ("train", "val", "test"):
        assert torch.allclose(other.splits[split].tensors[0], from_csv.splits[split].tensors[0], atol=1e-6)
        assert torch.equal(other.splits[split].tensors[1], from_csv.splits[split].tensors[1])


def test_a_separate_test_file_is_the_test_split_row_for_row(make_cfg, tmp_path):
    frame = churn(n=700)
    train_path, test_path = write(frame[:500], tmp_path / "a.csv"), write(frame[500:], tmp_path / "b.csv")
    dm = datamodule(make_cfg, train_path, f"data.test_path={test_path}")
    assert len(dm.indices["test"]) == 200 and list(dm.indices["test"]) == list(range(500, 700))
    labels = [dm.class_names[c] for c in dm.splits["test"].tensors[1]]
    assert labels == list(frame["label"][500:])


def test_string_labels_are_named_in_predictions(tmp_path):
    probs = torch.tensor([[0.9, 0.1], [0.2, 0.8]])
    write_predictions(tmp_path / "p.csv", [3, 7], torch.tensor([0, 0]), probs, ["no", "yes"])
    with open(tmp_path / "p.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["target"], r["prediction"]) for r in rows] == [("no", "no"), ("no", "yes")]
    assert set(rows[0]) == {"index", "target", "prediction", "prob_no", "prob_yes"}


def test_a_table_trains_end_to_end(make_cfg, tmp_path):
    path = write(churn(n=1200), tmp_path / "t.csv")
    train(make_cfg("data=table", f"data.path={path}", "data.target=label", "trainer.max_epochs=8"))
    assert (
        json.loads((tmp_path / "metrics.json").read_text())["test/acc"] > 0.85
    )  # a rule on one category and one number


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["data.path=/nonexistent/t.csv"], "data.path='/nonexistent/t.csv': no such file or folder"),
        (["data.target=colour_x"], "data.target='colour_x' is not a column; columns: colour, size, label"),
        (["data.features=[colour,weight]"], r"data.features: \['weight'\] are not columns"),
        (
            ["data.task=regression", "data.stratify=false", "loss=mse", "optimized_metric=val/r2"],
            "the target holds non-numbers .* but data.task=regression",
        ),
        (["data.split_column=colour"], r"data.split_column='colour' holds .*: allowed values train, val, test"),
    ],
)
def test_bad_table_settings_name_the_key(make_cfg, tmp_path, overrides, message):
    path = write(churn(), tmp_path / "t.csv")
    cfg = make_cfg("data=table", f"data.path={path}", "data.target=label", *overrides)
    with pytest.raises(ConfigError, match=message):
        check(cfg)
        build_module(cfg)


def test_a_column_missing_in_every_train_row_is_refused(make_cfg, tmp_path):
    frame = churn().assign(empty=None)
    cfg = make_cfg("data=table", f"data.path={write(frame, tmp_path / 't.csv')}", "data.target=label")
    with pytest.raises(ConfigError, match=r"data.features: column\(s\) \['empty'\] are missing in every train row"):
        build_module(cfg)


@pytest.mark.parametrize("layout", ["one file", "split column", "test file"])
def test_a_converted_table_streams_what_the_in_memory_path_holds(make_cfg, tmp_path, monkeypatch, layout):
    frame = churn(n=900)
    overrides = []
    if layout == "split column":
        frame["split"] = np.where(np.arange(900) < 700, "train", np.where(np.arange(900) < 780, "val", "test"))
        overrides = ["data.split_column=split"]
    path = write(frame if layout != "test file" else frame[:700], tmp_path / "t.parquet")
    if layout == "test file":
        overrides = [f"data.test_path={write(frame[700:], tmp_path / 'test.csv')}"]
    memory = datamodule(make_cfg, path, *overrides)
    streamed = datamodule(make_cfg, path, *overrides, "data.convert=true", f"data.cache_dir={tmp_path / 'c'}")
    assert isinstance(streamed, DataModule) and not isinstance(streamed, TensorSplits)  # streamed, not held
    assert streamed.input_shape == memory.input_shape and streamed.class_names == memory.class_names
    assert streamed.split_sizes() == memory.split_sizes()
    for split in ("train", "val", "test"):
        rows = streamed.splits[split]
        x, y = streamed.on_after_batch_transfer(next(iter(streamed._loader(rows, len(rows)))), 0)
        assert torch.allclose(x, memory.splits[split].tensors[0], atol=1e-5), split
        assert torch.equal(y, memory.splits[split].tensors[1]), split

    def no_encoding(*args, **kwargs):
        raise AssertionError("encoded again")

    monkeypatch.setattr("hyperlab.data.table_shard.encoder", no_encoding)
    again = datamodule(make_cfg, path, *overrides, "data.convert=true", f"data.cache_dir={tmp_path / 'c'}")
    assert again.split_sizes() == memory.split_sizes()  # read from the shard


def test_a_streamed_table_trains_and_refuses_in_memory_knobs(make_cfg, tmp_path):
    path = write(churn(n=1200), tmp_path / "t.csv")
    base = ["data=table", f"data.path={path}", "data.target=label", "data.convert=true", f"data.cache_dir={tmp_path}"]
    train(make_cfg(*base, "trainer.max_epochs=8", output_dir=tmp_path / "run"))
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["test/acc"] > 0.85
    with pytest.raises(ConfigError, match="data.sampler='smote' needs the table in memory: set data.convert=false"):
        check(make_cfg(*base, "data.sampler=smote"))


def test_a_shared_shard_cache_never_serves_another_splits_statistics(make_cfg, tmp_path):
    """Issue 33's stale-shard case: two split seeds in one cache dir, each run's train statistics equal those of a
    shard built fresh for that seed (the cache key holds the split settings), and two shards are kept."""
    path = write(churn(n=600), tmp_path / "t.csv")
    shared = f"data.cache_dir={tmp_path / 'shared'}"
    for seed in (0, 1, 0):
        cached = datamodule(make_cfg, path, "data.convert=true", shared, f"data.split_seed={seed}")
        fresh = datamodule(make_cfg, path, "data.convert=true", f"data.cache_dir={tmp_path / f'fresh{seed}'}",
                           f"data.split_seed={seed}")  # fmt: skip
        assert torch.equal(cached.mean, fresh.mean) and torch.equal(cached.std, fresh.std), seed
    assert len(list((tmp_path / "shared").iterdir())) == 2
    other = datamodule(make_cfg, path, "data.convert=true", shared, "data.split_seed=1")
    assert not torch.equal(cached.mean, other.mean)


def test_max_categories_keeps_the_frequent_levels_and_shares_one_column_for_the_rest(make_cfg, tmp_path):
    # 30 levels: l00..l03 take 40 rows each, l04..l29 2 rows each (212 rows); max_categories=5 keeps 4 + infrequent
    levels = [f"l{i:02d}" for i in range(4) for _ in range(40)] + [f"l{i:02d}" for i in range(4, 30) for _ in range(2)]
    frame = pd.DataFrame({"level": levels, "label": ["a", "b"] * (len(levels) // 2)})
    frame["split"] = "train"
    frame.loc[[0, 1, 160, 161], "split"] = ["val", "test", "val", "test"]  # a frequent and a rare row in each
    dm = datamodule(make_cfg, write(frame, tmp_path / "t.csv"), "data.split_column=split", "data.normalize=false",
                    "data.max_categories=5")  # fmt: skip
    assert dm.input_shape == (5,)  # not 30 one-hot columns
    x = dm.splits["train"].tensors[0]
    frequent, rare = x[:150], x[170:]  # the train rows in file order: l00..l03 first, then the rare levels
    assert torch.all(frequent[:, -1] == 0) and torch.all(frequent[:, :4].sum(1) == 1)
    assert torch.all(rare[:, -1] == 1) and torch.all(rare[:, :4] == 0)  # every rare level: the shared column


@pytest.mark.parametrize(
    ("overrides", "columns"), [([], 40), (["data.min_frequency=20"], 21), (["data.max_categories=5"], 5)]
)
def test_a_level_with_min_frequency_train_rows_gets_a_column_of_its_own(make_cfg, tmp_path, overrides, columns):
    # 40 levels, l00..l19 in 30 train rows each, l20..l39 in 12: every one is seen often enough to learn from
    levels = [f"l{i:02d}" for i in range(20) for _ in range(30)]
    levels += [f"l{i:02d}" for i in range(20, 40) for _ in range(12)]
    frame = pd.DataFrame({"level": levels, "label": ["a", "b"] * (len(levels) // 2), "split": "train"})
    frame.loc[[0, 1], "split"] = ["val", "test"]
    path = write(frame, tmp_path / "t.csv")
    dm = datamodule(make_cfg, path, "data.split_column=split", "data.normalize=false", *overrides)
    assert dm.input_shape == (columns,)  # the default keeps all 40; 20 rows a level merges the 20 rarer ones


def test_a_level_only_the_test_split_has_goes_to_the_infrequent_column(make_cfg, tmp_path):
    frame = pd.DataFrame(
        {
            "colour": ["a", "a", "a", "a", "b", "c", "a", "zebra"],
            "label": ["x", "y", "x", "y", "x", "y", "x", "y"],
            "split": ["train"] * 6 + ["val", "test"],
        }
    )
    dm = datamodule(make_cfg, write(frame, tmp_path / "t.csv"), "data.split_column=split", "data.normalize=false",
                    "data.max_categories=2", "data.min_frequency=1")  # fmt: skip
    assert dm.input_shape == (2,)  # a, and b + c as the infrequent group
    assert dm.splits["train"].tensors[0][:, 1].tolist() == [0, 0, 0, 0, 1, 1]
    assert dm.splits["test"].tensors[0].tolist() == [[0.0, 1.0]]  # zebra: infrequent, not all zeros


@pytest.mark.parametrize(
    "change",
    ["the file's rows", "data.max_categories=2", "data.min_frequency=40", "data.fit_rows=50", "data.normalize=false"],
)
@pytest.mark.parametrize("convert", [False, True])
def test_a_changed_table_or_setting_is_never_served_from_the_cache(make_cfg, tmp_path, convert, change):
    """Both caches (the in-memory tensors of data.cache_dir, the streamed shard): what changes the encoded rows
    changes the key, so the run sees what a fresh cache would give it."""
    path = write(churn(n=300), tmp_path / "t.csv")
    settings = [f"data.convert={convert}", f"data.cache_dir={tmp_path / 'shared'}"]
    before = features(datamodule(make_cfg, path, *settings))
    changed = [] if change == "the file's rows" else [change]
    if change == "the file's rows":
        write(churn(n=300, seed=1), tmp_path / "t.csv")  # the same name, other rows
    after = features(datamodule(make_cfg, path, *settings, *changed))
    fresh = features(datamodule(make_cfg, path, settings[0], *changed, f"data.cache_dir={tmp_path / 'fresh'}"))
    assert torch.equal(after, fresh)
    if change != "data.fit_rows=50" or convert:  # in memory the encoder fits on every train row: nothing changes
        assert after.shape != before.shape or not torch.equal(after, before)


def test_a_streamed_loader_made_for_a_resumed_run_serves_that_epochs_order_first(make_cfg, tmp_path):
    from hyperlab.data import EpochSeededSampler
    from tests.test_data import resumed_trainer

    path = write(churn(n=300), tmp_path / "t.csv")
    dm = datamodule(make_cfg, path, "data.convert=true", f"data.cache_dir={tmp_path}", "data.shuffle_seed=5")
    dm.trainer = resumed_trainer(2)
    loader = dm.train_dataloader()
    expected = EpochSeededSampler(len(dm.splits["train"]), 5, epoch=2).order()[: dm.batch_size]
    assert loader.sampler.epoch == 2 and torch.equal(loader.sampler.order()[: dm.batch_size], expected)
    assert torch.equal(next(iter(loader))[1], torch.stack([dm.splits["train"][int(i)][1] for i in expected]))


def test_a_target_with_one_class_is_refused_naming_the_key(make_cfg, tmp_path):
    frame = pd.DataFrame({"size": range(20), "label": ["yes"] * 20})
    with pytest.raises(ValueError, match="data.target: a classification target needs 2 or more classes, .* 'yes'"):
        datamodule(make_cfg, write(frame, tmp_path / "t.csv"))
