"""data=images: an image folder decoded in DataLoader workers, or converted once into a memory-mapped shard."""

import json
from unittest import mock

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from PIL import Image, ImageDraw

from hyperlab.builders import build_module
from hyperlab.contracts import DataModule, RowSplits, TensorSplits
from hyperlab.data import images
from hyperlab.errors import ConfigError
from hyperlab.train import train

SHAPES = ("bar", "circle", "square")  # sorted: the class codes


def draw_folder(root, per_class: int = 30, seed: int = 0):
    """One subfolder per shape; images of varied sizes and colours, so only the shape tells the class."""
    rng = np.random.default_rng(seed)
    for shape in SHAPES:
        (root / shape).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            w, h = int(rng.integers(20, 40)), int(rng.integers(20, 40))
            image = Image.new("RGB", (w, h), tuple(int(v) for v in rng.integers(0, 80, 3)))
            pen, fill = ImageDraw.Draw(image), tuple(int(v) for v in rng.integers(150, 256, 3))
            box = (w * 0.2, h * 0.2, w * 0.8, h * 0.8)
            if shape == "circle":
                pen.ellipse(box, fill=fill)
            elif shape == "square":
                pen.rectangle(box, fill=fill)
            else:
                pen.rectangle((w * 0.45, 0, w * 0.55, h), fill=fill)
            image.save(root / shape / f"{i:03d}.png")
    return root


@pytest.fixture
def folder(tmp_path):
    return draw_folder(tmp_path / "shapes")


def datamodule(make_cfg, path, *overrides):
    dm = instantiate(make_cfg("data=images", f"data.path={path}", "data.num_workers=0", *overrides).data)
    dm.setup()
    return dm


def test_images_are_decoded_resized_and_named_by_their_folder(folder, make_cfg, tmp_path):
    dm = datamodule(make_cfg, folder, "data.image_size=[16,24]")
    assert dm.class_names == list(SHAPES) and dm.num_classes == 3 and dm.input_shape == (3, 16, 24)
    x, y = dm.splits["train"][0]
    assert x.dtype == torch.uint8 and x.shape == (3, 16, 24)
    file = dm.splits["train"].dataset.files[dm.indices["train"][0]]
    with Image.open(file) as image:
        expected = np.asarray(image.convert("RGB").resize((24, 16), Image.BILINEAR)).transpose(2, 0, 1)
    assert np.array_equal(x.numpy(), expected) and SHAPES[y] == file.parent.name
    grey = datamodule(make_cfg, folder, "data.channels=1")
    assert grey.splits["train"][0][0].shape == (1, 32, 32)
    assert dm.split_sizes() == {"train": 62, "val": 9, "test": 19}  # 90 images, stratified 70 / 10 / 20


def test_a_csv_of_paths_and_labels_lists_the_same_images(folder, make_cfg):
    rows = ["path,label"] + [f"{f.parent.name}/{f.name},{f.parent.name}" for f in sorted(folder.rglob("*.png"))]
    (folder / "list.csv").write_text("\n".join(rows) + "\n")
    from_csv, from_folders = datamodule(make_cfg, folder / "list.csv"), datamodule(make_cfg, folder)
    assert from_csv.class_names == from_folders.class_names
    assert torch.equal(from_csv.splits["test"][3][0], from_folders.splits["test"][3][0])


def test_batches_are_normalised_on_the_device_with_train_statistics(folder, make_cfg):
    dm = datamodule(make_cfg, folder, "data.stats_samples=1000")
    train = torch.stack([dm.splits["train"][i][0] for i in range(len(dm.splits["train"]))]).float() / 255
    assert torch.allclose(dm.mean.flatten(), train.mean((0, 2, 3)), atol=1e-5)
    assert torch.allclose(dm.std.flatten(), train.transpose(0, 1).flatten(1).std(1), atol=1e-5)  # per channel
    raw, labels = next(iter(dm.train_dataloader()))
    x, y = dm.on_after_batch_transfer((raw, labels), 0)
    assert raw.dtype == torch.uint8 and x.shape == (62, 3, 32, 32)  # all 62 train images in one batch of 64
    assert torch.allclose(x, (raw.float() / 255 - dm.mean) / dm.std) and torch.equal(y, labels)


def test_a_converted_shard_serves_the_same_images_and_a_rerun_reads_it(folder, make_cfg, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    decoded = datamodule(make_cfg, folder)
    converted = datamodule(make_cfg, folder, "data.convert=true", f"data.cache_dir={cache}")
    for i in range(len(decoded.splits["val"])):
        assert torch.equal(decoded.splits["val"][i][0], converted.splits["val"][i][0])
    (shard,) = cache.glob("*/manifest.json")
    assert json.loads(shard.read_text()) == {"images": 90, "shape": [3, 32, 32]}

    def no_decoding(*args):
        raise AssertionError("decoded again")

    monkeypatch.setattr(images, "decode", no_decoding)
    again = datamodule(make_cfg, folder, "data.convert=true", f"data.cache_dir={cache}")
    assert torch.equal(again.splits["test"][0][0], converted.splits["test"][0][0])


def test_the_image_module_meets_the_data_contract_and_refuses_in_memory_options(folder, make_cfg):
    dm = datamodule(make_cfg, folder)
    assert isinstance(dm, DataModule) and isinstance(dm, RowSplits) and not isinstance(dm, TensorSplits)
    cfg = make_cfg("data=images", f"data.path={folder}", "model=cnn", "quantize=dynamic")
    with pytest.raises(ConfigError, match="quantize=dynamic reads the splits as tensors in memory"):
        build_module(cfg)


def test_an_image_folder_trains_end_to_end_in_worker_processes(folder, make_cfg, tmp_path):
    overrides = ["model=cnn", "data.num_workers=2", "batch_size=16", "trainer.max_epochs=12"]
    cfg = make_cfg("data=images", f"data.path={folder}", *overrides)
    train(cfg)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["test/acc"] >= 0.8 and metrics["data/test_rows"] == 19


def test_a_folder_without_class_subfolders_is_refused(tmp_path, make_cfg):
    (tmp_path / "flat").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "flat" / "a.png")
    cfg = make_cfg("data=images", f"data.path={tmp_path / 'flat'}")
    with pytest.raises(ConfigError, match="expected one subfolder of images per class"):
        build_module(cfg)


def test_ranks_draw_disjoint_shards_of_each_epochs_order(folder, make_cfg):
    """Under DDP Lightning wraps the training sampler (DistributedSamplerWrapper): each rank takes every
    world_size-th index of the epoch's seeded order, so the ranks' images are disjoint and cover the split."""
    from lightning.fabric.utilities.distributed import DistributedSamplerWrapper

    sampler = datamodule(make_cfg, folder).train_dataloader().sampler
    shards = []
    for rank in (0, 1):
        wrapped = DistributedSamplerWrapper(sampler, num_replicas=2, rank=rank)  # as Lightning builds it
        wrapped.set_epoch(3)
        shards.append(list(wrapped))
    assert not set(shards[0]) & set(shards[1]) and len(shards[0]) == len(shards[1]) == 31
    assert set(shards[0]) | set(shards[1]) == set(range(62))


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("data.channels=2", "data.channels=2 is not allowed: must be 1 \\(greyscale\\) or 3 \\(RGB\\)"),
        ("data.image_size=[32]", r"data.image_size=\[32\] is not allowed: must be \[H, W\], integers >= 1"),
        ("data.stats_samples=0", "data.stats_samples=0 is not allowed: must be an integer >= 1"),
        ("data.path=/nonexistent/pets", "data.path='/nonexistent/pets': no such file or folder"),
    ],
)
def test_bad_image_settings_are_refused_at_config_time(folder, make_cfg, override, message):
    from hyperlab.config.rules import check

    with pytest.raises(ConfigError, match=message):
        check(make_cfg("data=images", f"data.path={folder}", override))


@pytest.mark.parametrize("change", ["an image rewritten", "data.image_size=[16,16]", "data.channels=1"])
def test_a_changed_image_or_decode_setting_is_never_served_from_the_shard(folder, make_cfg, tmp_path, change):
    shared = [f"data.cache_dir={tmp_path / 'shared'}", "data.convert=true"]
    datamodule(make_cfg, folder, *shared)
    changed = [] if change == "an image rewritten" else [change]
    if change == "an image rewritten":  # the same name, other pixels: a blank image of another size
        Image.new("RGB", (50, 10), (7, 7, 7)).save(folder / "bar" / "000.png")
    after = datamodule(make_cfg, folder, *shared, *changed)
    decoded = datamodule(make_cfg, folder, *changed)  # no shard: straight from the files
    for split in ("train", "test"):
        for i in range(len(decoded.splits[split])):
            assert torch.equal(after.splits[split][i][0], decoded.splits[split][i][0])
    assert len(list((tmp_path / "shared").glob("*/manifest.json"))) == 2


def test_skip_undecodable_leaves_broken_files_out_of_every_split_and_lists_them(folder, make_cfg, tmp_path):
    whole = datamodule(make_cfg, folder)
    broken = folder / "bar" / "000.png"
    broken.write_bytes(broken.read_bytes()[:60])  # a truncated PNG: it opens, and fails when decoded
    cache = f"data.cache_dir={tmp_path / 'cache'}"
    dm = datamodule(make_cfg, folder, "data.skip_undecodable=true", cache)
    files = dm.splits["train"].dataset.files
    assert broken not in files and len(files) == len(whole.splits["train"].dataset.files) - 1
    assert sum(map(len, dm.splits.values())) == len(files)
    for split in dm.splits.values():  # every kept image decodes
        for i in range(len(split)):
            split[i]
    assert dm.provenance == {"data/undecodable": [str(broken)]}
    assert whole.provenance == {}  # off: nothing checked, nothing recorded
    # the check ran once: a second setup reads its list from the cache, even with the decoder gone
    with mock.patch("hyperlab.data.images.Decodes", side_effect=AssertionError("decoded again")):
        again = datamodule(make_cfg, folder, "data.skip_undecodable=true", cache)
    assert again.skipped == [broken]


def test_an_image_that_cannot_be_decoded_is_named_by_its_path(folder, make_cfg):
    broken = folder / "bar" / "000.png"
    broken.write_bytes(broken.read_bytes()[:60])  # a truncated PNG
    with pytest.raises(ValueError, match=f"data.path: the image '{broken}' cannot be decoded: "):
        dm = datamodule(make_cfg, folder)  # the train statistics decode the train images; the rest on access
        for split in dm.splits.values():
            for i in range(len(split)):
                split[i]


def test_the_baselines_read_an_image_folder_as_pixel_rows_on_the_trials_folds(folder, make_cfg, tmp_path):
    """An SVC on pixels is an image folder's baseline: same_rows reads the streamed splits into arrays, the
    pixels of each test image flattened, and each fold's rows are the trial's fold k rows."""
    from hyperlab.builders.rows import same_rows

    overrides = ["data=images", f"data.path={folder}", "data.num_workers=0", "data.num_folds=3"]
    rows = same_rows(make_cfg(*overrides).data)
    assert rows["x"].shape == (len(rows["rows"]["train_val"]), 3 * 32 * 32) and rows["shape"] == (3, 32, 32)
    whole = datamodule(make_cfg, folder, "data.refit=true")
    first = whole.splits["test"][0]
    assert np.array_equal(rows["x_test"][0], first[0].flatten().float().numpy()) and rows["y_test"][0] == first[1]
    for k, (fit, val) in enumerate(rows["folds"]):
        trial = datamodule(make_cfg, folder, "data.num_folds=3", f"data.fold={k}")
        assert sorted(rows["rows"]["train_val"][val]) == sorted(trial.indices["val"])
        assert sorted(rows["rows"]["train_val"][fit]) == sorted(trial.indices["train"])
