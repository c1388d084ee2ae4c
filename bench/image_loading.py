"""Image-folder loading: hyperlab's data=images against a hand-written torch DataLoader over the same files and the
same decode, the converted shard against decoding again, and peak memory against the folder's size.

    python bench/image_loading.py [--images 2000] [--rounds 3]     # writes "Image loading" into bench/results.md

The converted variants: hyperlab's memory-mapped uint8 shard (`data.convert=true`), and the same decoded images
converted into a Hugging Face `datasets` Arrow table (an Array3D uint8 column, memory-mapped by Arrow, read in
the torch format through a DataLoader, which fetches a batch's rows at once through `__getitems__`): the engine
the data-doors issue named first, measured here on the same folder.

A folder of noisy 64x64 PNGs in 10 class subfolders is generated once (noise: PNG compresses it poorly, so decoding
costs what it costs on photographs of that size). Every variant reads the same train split, resizes to 32x32
with Pillow's bilinear filter in 2 worker processes, batches of 64, and normalises each batch per channel; the
figure is images per second of the second epoch (workers started, page cache warm), median over interleaved
rounds. Peak memory: a fresh process per folder size runs one epoch and reports its own and its workers' peak
resident set.
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from report import publish
from torch.utils.data import DataLoader, Dataset, Subset

from hyperlab.data.images import ImageFolderDataModule, decode, list_images

SIZE, WORKERS, BATCH = (32, 32), 2, 64


def make_folder(root: Path, images: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for i in range(images):
        folder = root / f"class_{i % 10}"
        folder.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{i:05d}.png")
    return root


class HandWritten(Dataset):
    """What one writes by hand: open, convert, resize, to a uint8 tensor."""

    def __init__(self, files, labels):
        self.files, self.labels = files, labels

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        with Image.open(self.files[i]) as image:
            pixels = np.array(image.convert("RGB").resize((SIZE[1], SIZE[0]), Image.BILINEAR), dtype=np.uint8)
        return torch.from_numpy(pixels).permute(2, 0, 1), int(self.labels[i])


def epoch_rate(loader, normalise) -> float:
    """Images per second of one pass over `loader`, each batch normalised as training would."""
    start, seen = time.perf_counter(), 0
    for x, _ in loader:
        normalise(x)
        seen += len(x)
    return seen / (time.perf_counter() - start)


def hyperlab_module(folder: Path, cache: Path | None, persistent: bool = True) -> ImageFolderDataModule:
    convert = {"convert": True, "cache_dir": str(cache)} if cache else {}
    dm = ImageFolderDataModule(
        str(folder), image_size=SIZE, num_workers=WORKERS, batch_size=BATCH, persistent_workers=persistent, **convert
    )
    dm.setup()
    return dm


def arrow_table(files: list[Path], labels: list[int], cache: Path):
    """The decoded, resized images as a `datasets` Arrow table in `cache`, decoded by WORKERS processes."""
    from datasets import Array3D, Dataset, Features, Value

    def rows(indices: list[int]):
        for i in indices:
            yield {"image": decode(files[i], SIZE, "RGB"), "label": int(labels[i])}

    features = Features({"image": Array3D(shape=(3, *SIZE), dtype="uint8"), "label": Value("int64")})
    # datasets splits a list in gen_kwargs into num_proc contiguous parts, one a process
    table = Dataset.from_generator(
        rows,
        features=features,
        gen_kwargs={"indices": list(range(len(files)))},
        num_proc=WORKERS,
        cache_dir=str(cache),
    )
    return table.with_format("torch")


def arrow_batch(rows: list[dict]) -> tuple:
    return torch.stack([r["image"] for r in rows]), torch.stack([r["label"] for r in rows])


def loaders(folder: Path, cache: Path, arrow) -> dict:
    """Each variant's training loader and its per-batch normalisation, built once (workers persist)."""
    decoded, converted = hyperlab_module(folder, None), hyperlab_module(folder, cache)
    train = decoded.splits["train"]
    files = [train.dataset.files[i] for i in train.indices]
    labels = [train.dataset.labels[i] for i in train.indices]
    by_hand = DataLoader(
        HandWritten(files, labels), batch_size=BATCH, shuffle=True, num_workers=WORKERS, persistent_workers=True
    )
    mean, std = decoded.mean, decoded.std
    from_arrow = DataLoader(
        Subset(arrow, list(train.indices)),
        batch_size=BATCH,
        shuffle=True,
        num_workers=WORKERS,
        persistent_workers=True,
        collate_fn=arrow_batch,
    )
    return {
        "hand-written DataLoader": (by_hand, lambda x: (x.float() / 255 - mean) / std),
        "hyperlab data=images": (decoded.train_dataloader(), decoded._normalised),
        "hyperlab data=images data.convert=true": (converted.train_dataloader(), converted._normalised),
        "Hugging Face datasets (Arrow), converted": (from_arrow, lambda x: (x.float() / 255 - mean) / std),
    }


def throughput(folder: Path, rounds: int) -> tuple[dict, dict]:
    cache = Path(tempfile.mkdtemp(prefix="hyperlab-images-cache-"))
    start = time.perf_counter()
    hyperlab_module(folder, cache)  # the one-off conversion, timed alone
    conversion_s = {"hyperlab shard": time.perf_counter() - start}
    files, labels, _ = list_images(str(folder))
    start = time.perf_counter()
    arrow = arrow_table(files, labels, cache / "arrow")
    conversion_s["Hugging Face datasets"] = time.perf_counter() - start
    variants = loaders(folder, cache, arrow)
    rates = {name: [] for name in variants}
    for loader, normalise in variants.values():
        epoch_rate(loader, normalise)  # first epoch: workers start
    for _ in range(rounds):
        for name, (loader, normalise) in variants.items():
            rates[name].append(epoch_rate(loader, normalise))
    return {name: (statistics.median(r), min(r), max(r)) for name, r in rates.items()}, conversion_s


def peak_memory(folder: Path) -> dict:
    """One epoch of data=images (decoding) in a fresh process: its peak RSS and its workers' (MiB)."""
    code = f"""
import json, resource, sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
from image_loading import hyperlab_module
# workers that end with the epoch, so that RUSAGE_CHILDREN counts them
dm = hyperlab_module(__import__("pathlib").Path({str(folder)!r}), None, persistent=False)
for x, _ in dm.train_dataloader():
    dm._normalised(x)
print(json.dumps({{"main": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "worker": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="hyperlab-images-"))
    small, large = make_folder(root / "small", args.images), make_folder(root / "large", 4 * args.images)
    rates, conversion_s = throughput(small, args.rounds)
    base = rates["hand-written DataLoader"][0]
    body = [
        f"{args.images} noisy 64x64 PNGs in 10 classes; the train split (70%) resized to 32x32, {WORKERS} workers, "
        f"batches of {BATCH}, each batch normalised; images/s of the second and later epochs, median of "
        f"{args.rounds} interleaved rounds.",
        "",
        "| variant | images/s (median) | min..max | vs hand-written |",
        "|---|---|---|---|",
    ]
    body += [f"| {n} | {m:.0f} | {lo:.0f}..{hi:.0f} | {m / base:.2f}x |" for n, (m, lo, hi) in rates.items()]
    memory = {n: peak_memory(folder) for n, folder in ((args.images, small), (4 * args.images, large))}
    (m1, w1), (m4, w4) = ((memory[n]["main"], memory[n]["worker"]) for n in (args.images, 4 * args.images))
    body += [
        "",
        "Converting the folder once, "
        + ", ".join(f"{n}: {t:.1f} s" for n, t in conversion_s.items())
        + f" ({WORKERS} processes each).",
        "",
        "| folder | peak RSS, main process MiB | peak RSS, a worker MiB |",
        "|---|---|---|",
        f"| {args.images} images | {m1:.0f} | {w1:.0f} |",
        f"| {4 * args.images} images | {m4:.0f} ({m4 / m1:.2f}x) | {w4:.0f} ({w4 / w1:.2f}x) |",
        "",
        "Targets (issue 23): hyperlab's decoding path >= 0.9x the hand-written loader: "
        f"{rates['hyperlab data=images'][0] / base:.2f}x; an epoch from the shard faster than decoding again: "
        f"{rates['hyperlab data=images data.convert=true'][0] / rates['hyperlab data=images'][0]:.2f}x; peak RSS "
        f"of an epoch over a 4x folder within 10% of the smaller one's: main {m4 / m1 - 1:+.1%}, "
        f"workers {w4 / w1 - 1:+.1%}.",
    ]
    publish("Image loading", "python bench/image_loading.py", body)


if __name__ == "__main__":
    main()
