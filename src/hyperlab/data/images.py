"""Image folders that need not fit in memory: one subfolder per class (or a CSV of path,label), decoded with Pillow
in DataLoader workers and resized to `image_size`, or converted once into a memory-mapped uint8 shard.

Images travel as uint8 (a quarter of float32's bytes through the workers' queues and to the device) and are
normalised on the device with per-channel statistics of the train split. `convert=true` decodes every image once
into `<cache_dir>/<key>/images.bin`, keyed by the files (names, sizes, modification times) and the decode settings,
as the token shards are (hyperlab.data.tokens); later epochs and runs read the shard instead of decoding again.
"""

import csv
import json
from collections.abc import Sequence
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Subset

from hyperlab import console
from hyperlab.data import augment as augmentation
from hyperlab.data.loading import Loader, ShardRows, StreamedSplits, fingerprint, grouped
from hyperlab.data.splits import Split, split_rows

SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
MODES = {1: "L", 3: "RGB"}  # data.channels -> Pillow's mode


def list_images(path: str) -> tuple[list[Path], np.ndarray, list[str]]:
    """(files, label codes, class names) of a folder of class subfolders, or of a CSV with columns path,label
    (paths relative to the CSV's folder); files in sorted order, so the list is the same on every machine."""
    root = Path(path)
    if root.is_file():
        with open(root, newline="") as f:
            rows = list(csv.DictReader(f))
        if not rows or not {"path", "label"} <= set(rows[0]):
            raise ValueError(f"data.path={path!r}: a CSV of images needs the columns path,label")
        names = sorted({r["label"] for r in rows})
        files = [root.parent / r["path"] for r in rows]
        return files, np.array([names.index(r["label"]) for r in rows]), names
    names = sorted(d.name for d in root.iterdir() if d.is_dir())
    files, labels = [], []
    for code, name in enumerate(names):
        found = sorted(f for f in (root / name).rglob("*") if f.suffix.lower() in SUFFIXES)
        files += found
        labels += [code] * len(found)
    if len(names) < 2 or not files:
        raise ValueError(f"data.path={path!r}: expected one subfolder of images per class (at least two classes)")
    return files, np.array(labels), names


def decode(file: Path, size: Sequence[int], mode: str) -> np.ndarray:
    """One image as uint8 (C, H, W): converted to `mode`, resized to `size` = (H, W) with bilinear filtering."""
    from PIL import Image

    try:
        with Image.open(file) as image:
            pixels = np.array(image.convert(mode).resize((size[1], size[0]), Image.BILINEAR), dtype=np.uint8)
    except OSError as error:  # PIL's own words name no file: "Truncated File Read", "cannot identify image file"
        raise ValueError(
            f"data.path: the image {str(file)!r} cannot be decoded: {error} (data.skip_undecodable=true leaves such "
            "files out and lists them in metrics.json)"
        ) from error
    return np.ascontiguousarray(pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1))


class Decodes(Dataset):
    """Whether each file decodes (1) or not (0): the check `skip_undecodable` runs in the loader's workers."""

    def __init__(self, files: list[Path]):
        self.files = files

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> int:
        from PIL import Image

        try:
            with Image.open(self.files[i]) as image:
                image.load()  # the whole file: a truncated one opens, and fails only here
        except OSError:
            return 0
        return 1


def undecodable(files: list[Path], workers: int, cache: Path) -> list[Path]:
    """The files Pillow cannot decode, found once per set of files (cached in `cache`, a JSON list)."""
    if cache.is_file():
        return [Path(f) for f in json.loads(cache.read_text())]
    flags = torch.cat(list(DataLoader(Decodes(files), batch_size=256, num_workers=workers)))
    broken = [file for file, ok in zip(files, flags.tolist(), strict=True) if not ok]
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps([str(f) for f in broken]))
    return broken


class DecodedImages(Dataset):
    """(uint8 image, label) decoded from its file at every access: the workers' job."""

    def __init__(self, files: list[Path], labels: np.ndarray, size: Sequence[int], mode: str):
        self.files, self.labels, self.size, self.mode = files, labels, tuple(size), mode

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        return torch.from_numpy(decode(self.files[i], self.size, self.mode)), int(self.labels[i])


def write_shard(images: DecodedImages, folder: Path, workers: int) -> None:
    """Decode every image once (in `workers` processes) into `images.npy`; the manifest, written last, marks a
    whole shard, so a conversion killed half way is redone, never read."""
    folder.mkdir(parents=True, exist_ok=True)
    shape = (len(images), len(images.mode), *images.size)
    shard = np.lib.format.open_memmap(folder / "images.tmp.npy", mode="w+", dtype=np.uint8, shape=shape)
    start = 0
    for batch, _ in DataLoader(images, batch_size=64, num_workers=workers):
        shard[start : start + len(batch)] = batch.numpy()
        start += len(batch)
    shard.flush()
    del shard
    (folder / "images.tmp.npy").replace(folder / "images.npy")
    (folder / "manifest.json").write_text(json.dumps({"images": shape[0], "shape": list(shape[1:])}))


def cache_key(files: list[Path], size: Sequence[int], mode: str) -> str:
    """The files' names, sizes and modification times, and the decode settings: a changed image is a new key."""
    return fingerprint([list(size), mode], files)


class ImageFolderDataModule(StreamedSplits, L.LightningDataModule):
    """Classification over an image folder; the split knobs are the in-memory module's (hyperlab.data.splits)."""

    task = "classification"
    vocab_size = None

    def __init__(
        self,
        path: str,
        image_size: Sequence[int] = (32, 32),
        channels: int = 3,
        convert: bool = False,
        cache_dir: str = ".cache/images",
        skip_undecodable: bool = False,
        augment=None,
        **settings,
    ):
        """`settings`: `stats_samples` and the loader knobs (hyperlab.data.loading.Loader) and the split ones
        (hyperlab.data.splits.Split), flat as the config gives them."""
        super().__init__()
        self.path, self.image_size, self.mode = path, tuple(image_size), MODES[channels]
        self.convert, self.cache_dir, self.augment = convert, Path(cache_dir), augment
        self.skip_undecodable, self.skipped = skip_undecodable, []
        self.stats_samples = settings.pop("stats_samples", 1024)
        self.split, self.loading = grouped(settings, Split, Loader)
        self.batch_size = self.loading.batch_size
        self.input_shape = (channels, *self.image_size)
        self.splits: dict[str, Subset] = {}

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        files, labels, self.class_names = list_images(self.path)
        self.num_classes = len(self.class_names)
        if self.skip_undecodable:  # left out before the split, so every split and run sees the same files
            found = cache_key(files, (), "decodes")  # the files' names, sizes and times
            self.skipped = undecodable(files, self.loading.num_workers, self.cache_dir / f"undecodable-{found}.json")
            skipped = set(self.skipped)
            kept = np.array([file not in skipped for file in files], dtype=bool)
            files, labels = [f for f, k in zip(files, kept, strict=True) if k], labels[kept]
            if skipped:
                console.say(
                    f"data: {len(skipped)} undecodable images left out (listed in metrics.json, data/undecodable)"
                )
        images = self._images(files, labels)
        self.indices = split_rows(labels, self.split)
        self.splits = {name: Subset(images, rows) for name, rows in self.indices.items()}
        self.mean, self.std = self._statistics()

    @property
    def provenance(self) -> dict:
        """metrics.json's record of the files left out (data.skip_undecodable): the run's list of them."""
        return {"data/undecodable": [str(f) for f in self.skipped]} if self.skip_undecodable else {}

    def _images(self, files: list[Path], labels: np.ndarray) -> Dataset:
        decoded = DecodedImages(files, labels, self.image_size, self.mode)
        if not self.convert:
            return decoded
        folder = self.cache_dir / cache_key(files, self.image_size, self.mode)
        if not (folder / "manifest.json").is_file():
            write_shard(decoded, folder, self.loading.num_workers)
        return ShardRows(np.load(folder / "images.npy", mmap_mode="r"), labels)

    def _statistics(self) -> tuple[Tensor, Tensor]:
        """Per-channel mean and std of (up to `stats_samples`, seeded) train images, in [0, 1] units."""
        train = self.splits["train"]
        chosen = torch.randperm(len(train), generator=torch.Generator().manual_seed(self.split.split_seed))
        total = squares = torch.zeros(self.input_shape[0], dtype=torch.float64)
        for i in chosen[: self.stats_samples]:  # one image at a time: 1024 at 224x224 would be 616 MB of floats
            pixels = train[int(i)][0].double().flatten(1) / 255  # (C, H*W)
            total, squares = total + pixels.sum(1), squares + (pixels**2).sum(1)
        n = min(len(train), self.stats_samples) * self.image_size[0] * self.image_size[1]
        mean = total / n
        std = ((squares - n * mean**2).clamp(min=0) / max(n - 1, 1)).sqrt()  # unbiased, as torch.std
        std = torch.where(std > 0, std, torch.ones_like(std))
        return mean.float().view(1, -1, 1, 1), std.float().view(1, -1, 1, 1)

    def example_input(self) -> Tensor:
        return self._normalised(self.splits["train"][0][0][None])

    def _normalised(self, x: Tensor) -> Tensor:
        mean, std = self.mean.to(x.device), self.std.to(x.device)
        return (x.float() / 255 - mean) / std

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        """uint8 -> normalised float on the device; then the device augmentation, training batches only."""
        x, y = batch
        return augmentation.on_training_batches(self.augment, self.trainer, (self._normalised(x), y))
