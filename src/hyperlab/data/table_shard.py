"""A table larger than memory (data=table data.convert=true): read in chunks, encoded once into a memory-mapped float32
shard, streamed from it.

Four passes over the file(s), each holding one chunk: the target (and split) columns, whose rows are split as any
table's (hyperlab.data.splits); a seeded sample of up to `fit_rows` train rows, on which the encoder is fitted
(hyperlab.data.table.encoder: all train rows when there are no more, so the result equals the in-memory path's);
every row encoded into `<cache_dir>/<key>/features.npy`; the train rows' mean and std. The key covers the files
(names, sizes, modification times) and every setting that changes the shard, the split's included. Batches travel
encoded and are standardised on the device, as images are.
"""

import json
from collections.abc import Iterator
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Subset

from hyperlab.data import preprocess
from hyperlab.data.loading import Loader, ShardRows, StreamedSplits, fingerprint
from hyperlab.data.splits import Split, split_rows
from hyperlab.data.table_io import encoder, feature_columns, features_and_target, read_table

CHUNK_ROWS = 65_536


def read_chunks(path: str, columns: list[str] | None = None) -> Iterator:
    """The table at `path` as pandas frames of at most CHUNK_ROWS rows (only `columns` when given)."""
    import pandas as pd

    suffix = Path(path).suffix.lower()
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(path).iter_batches(batch_size=CHUNK_ROWS, columns=columns):
            yield batch.to_pandas()
    elif suffix == ".csv":
        yield from pd.read_csv(path, chunksize=CHUNK_ROWS, usecols=columns)
    else:
        read_table(path)  # refuses a suffix it cannot read, naming data.path
        for chunk in pd.read_json(path, lines=True, chunksize=CHUNK_ROWS):
            yield chunk[columns] if columns else chunk


class StreamedTableDataModule(StreamedSplits, L.LightningDataModule):
    """A table's rows from a memory-mapped shard; its knobs are data=table's (conf/data/table.yaml)."""

    vocab_size = None

    def __init__(self, files: dict, target: str, features, split_column, levels: tuple[int, int], fit_rows: int,
                 cache_dir: str, task: str, normalize: bool, split: Split, loading: Loader, augment=None):  # fmt: skip
        """`levels`: (data.max_categories, data.min_frequency), the one-hot encoder's (hyperlab.data.table_io)."""
        super().__init__()
        self.files, self.target, self.features, self.split_column = files, target, features, split_column
        self.levels, self.fit_rows, self.cache_dir = tuple(levels), fit_rows, Path(cache_dir)
        self.task, self.normalize, self.split, self.loading = task, normalize, split, loading
        self.batch_size, self.augment = loading.batch_size, augment
        self.splits: dict[str, Subset] = {}

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        columns = feature_columns(next(read_chunks(self.files["train"])), self.target, self.features, self.split_column)
        targets, given = self._targets()
        y, self.class_names = preprocess.class_codes(targets, self.task)
        self.targets = y  # class codes, or the regression values
        self.indices = split_rows(y, self.split, given=given)
        folder = self.cache_dir / self._key(columns)
        if not (folder / "manifest.json").is_file():
            self._write_shard(folder, columns)
        manifest = json.loads((folder / "manifest.json").read_text())
        features = np.load(folder / "features.npy", mmap_mode="r")
        labels = y.astype(np.float32 if self.task == "regression" else np.int64)
        rows = ShardRows(features, labels)
        self.splits = {name: Subset(rows, index) for name, index in self.indices.items()}
        self.mean, self.std = (torch.tensor(manifest[key], dtype=torch.float32) for key in ("mean", "std"))
        self.target_mean, self.target_std = manifest["target_mean"], manifest["target_std"]
        self.input_shape, self.num_classes = (features.shape[1],), 1 if self.task == "regression" else int(y.max()) + 1

    def _frames(self, columns: list[str] | None) -> Iterator[tuple[object, np.ndarray, int]]:
        """(features frame, targets, split code) per chunk, over the given files in order, rows without a target
        dropped (as load_table drops them); with a split column, the code of each row instead."""
        for code, name in enumerate(("train", "val", "test")):
            if name not in self.files:
                continue
            for chunk in read_chunks(self.files[name]):
                frame, target = features_and_target(chunk, columns or [], self.target)
                codes = code
                if self.split_column is not None:
                    kept = chunk[chunk[self.target].notna()][self.split_column].map(str).to_numpy()
                    codes = np.array([("train", "val", "test").index(v) for v in kept])
                yield frame, target, codes

    def _targets(self) -> tuple[np.ndarray, np.ndarray | None]:
        parts = [(target, np.broadcast_to(code, len(target))) for _, target, code in self._frames(None)]
        targets = np.concatenate([t for t, _ in parts])
        codes = np.concatenate([c for _, c in parts])
        given = None if len(self.files) == 1 and self.split_column is None else codes
        return targets, given

    def _key(self, columns: list[str]) -> str:
        names = sorted(self.files)  # which file is train, val or test
        settings = [self.target, columns, self.split_column, *self.levels, self.fit_rows, self.task, names]
        return fingerprint([settings, vars(self.split)], [Path(self.files[name]).resolve() for name in names])

    def _write_shard(self, folder: Path, columns: list[str]) -> None:
        """Fit the encoder on the sampled train rows (one pass), encode every row into features.npy (one pass), then
        the train rows' statistics; the manifest, written last, marks a whole shard."""
        train = self.indices["train"]
        rng = np.random.default_rng(self.split.split_seed)
        sample = self._rows(columns, np.sort(rng.choice(train, min(self.fit_rows, len(train)), replace=False)))
        encode = encoder(sample, *self.levels).fit(sample)
        folder.mkdir(parents=True, exist_ok=True)
        n = len(self.targets)  # every row with a target (nested CV over given splits leaves given test rows out)
        width = encode.transform(sample.iloc[:1]).shape[1]
        shard = np.lib.format.open_memmap(folder / "features.tmp.npy", mode="w+", dtype=np.float32, shape=(n, width))
        start = 0
        for frame, _, _ in self._frames(columns):
            shard[start : start + len(frame)] = encode.transform(frame)
            start += len(frame)
        shard.flush()
        (folder / "features.tmp.npy").replace(folder / "features.npy")
        manifest = {"rows": n, "width": width, **self._statistics(np.load(folder / "features.npy", mmap_mode="r"))}
        (folder / "manifest.json").write_text(json.dumps(manifest))

    def _rows(self, columns: list[str], rows: np.ndarray):
        """The feature rows `rows` (sorted global indices) as one frame, gathered chunk by chunk."""
        import pandas as pd

        parts, start = [], 0
        for frame, _, _ in self._frames(columns):
            inside = rows[(rows >= start) & (rows < start + len(frame))] - start
            parts.append(frame.iloc[inside])
            start += len(frame)
        return pd.concat(parts, ignore_index=True)

    def _statistics(self, features: np.memmap) -> dict:
        """Per-column mean and (unbiased, as torch's) std of the train rows, and the regression target's."""
        train = np.sort(self.indices["train"])
        total, squares = np.zeros(features.shape[1]), np.zeros(features.shape[1])
        for start in range(0, len(train), CHUNK_ROWS):
            block = features[train[start : start + CHUNK_ROWS]].astype(np.float64)
            total, squares = total + block.sum(0), squares + (block**2).sum(0)
        mean = total / len(train)
        std = np.sqrt(np.maximum(squares - len(train) * mean**2, 0) / max(len(train) - 1, 1))
        y = self.targets[train].astype(np.float64) if self.task == "regression" else np.zeros(1)  # read in setup
        return {
            "mean": mean.tolist(),
            "std": np.where(std > 0, std, 1.0).tolist(),
            "target_mean": float(y.mean()) if self.task == "regression" else 0.0,
            "target_std": float(y.std(ddof=1)) if self.task == "regression" and len(y) > 1 else 1.0,
        }

    def example_input(self) -> Tensor:
        return self._standardised((self.splits["train"][0][0][None], torch.zeros(1)))[0]

    def _standardised(self, batch: tuple) -> tuple:
        x, y = batch
        if not self.normalize:
            return x, y
        x = (x - self.mean.to(x.device)) / self.std.to(x.device)
        return x, (y - self.target_mean) / self.target_std if self.task == "regression" else y

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        return self._standardised(batch)
