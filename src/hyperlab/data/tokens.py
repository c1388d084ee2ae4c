"""Token data for language models: text files tokenised once into memory-mapped uint16 shards, read as windows.

`data=stdlib` is Python's own standard library source (every Python install ships it: no download), split by
file; `data.paths` takes a user's own files or folders instead. The first run tokenises each split into
`<cache_dir>/<key>/<split>.bin` (uint16 token ids, one file after another) beside a `manifest.json` (files, their
hash, token and byte counts, the tokenizer); later runs with the same files and settings open the shards as
`np.memmap`, so the corpus is never held in memory: a batch reads only its windows. Training batches are windows
at random offsets (seeded by `(seed, epoch)`, each DDP rank taking every world_size-th offset); validation and
test batches sweep the split in order, window after window.
"""

import hashlib
import json
import math
import random
import sysconfig
from collections.abc import Iterator
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch import Tensor

from hyperlab.errors import ConfigError, choose

TOKENIZERS = ("bytes", "bpe")
SKIPPED = {"site-packages", "dist-packages", "test", "tests", "idlelib"}  # not the library's own code
SUFFIXES = (".py", ".txt", ".md", ".rst")


def stdlib_files() -> list[Path]:
    """The standard library's .py files (674 files, 11.4 MB on CPython 3.11), without tests and site-packages."""
    root = Path(sysconfig.get_paths()["stdlib"])
    return sorted(p for p in root.rglob("*.py") if not SKIPPED & set(p.relative_to(root).parts))


def text_files(paths: list[str]) -> list[Path]:
    """Files named in `paths`, and the text files (.py, .txt, .md, .rst) under the folders named there."""
    found = []
    for entry in map(Path, paths):
        if entry.is_dir():
            found += [p for p in entry.rglob("*") if p.is_file() and p.suffix in SUFFIXES]
        elif entry.is_file():
            found.append(entry)
        else:
            raise ValueError(f"data.paths: {str(entry)!r} is neither a file nor a folder")
    if not found:
        raise ValueError(f"data.paths={paths}: no text files ({', '.join(SUFFIXES)}) found")
    return sorted(found)


def split_files(files: list[Path], val_fraction: float, test_fraction: float, seed: int) -> dict[str, list[Path]]:
    """Whole files to each split (a file's text is seen by one split only), in a seeded random order."""
    order = sorted(files)
    random.Random(seed).shuffle(order)
    n_val = max(1, round(len(order) * val_fraction))
    n_test = max(1, round(len(order) * test_fraction)) if test_fraction > 0 else 0
    if n_val + n_test >= len(order):
        raise ValueError(f"{len(order)} files are too few for data.val_fraction and data.test_fraction")
    return {"train": order[n_val + n_test :], "val": order[:n_val], "test": order[n_val : n_val + n_test]}


def windows_fit(splits: dict[str, list[Path]], context: int) -> None:
    """Every split must hold one window of context + 1 tokens. Both tokenizers make at most one token per byte,
    so a split with fewer bytes cannot: refused from the file sizes, before anything is tokenised."""
    for name, files in splits.items():
        n_bytes = sum(path.stat().st_size for path in files)
        if files and n_bytes < context + 2:
            raise ConfigError(
                f"data.context={context}: the {name} split's files hold {n_bytes} bytes, fewer than one window "
                f"(context + 1 tokens, at most one per byte); lower data.context or give that split more files"
            )


def read_text(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace")


class ByteTokenizer:
    """UTF-8 bytes as tokens (vocabulary 256): nothing to train, exactly one byte per token."""

    vocab_size = 256

    def encode(self, text: str) -> np.ndarray:
        return np.frombuffer(text.encode("utf-8"), dtype=np.uint8)

    def decode(self, ids) -> str:
        return np.asarray(ids, dtype=np.uint8).tobytes().decode("utf-8", errors="replace")


class BPETokenizer:
    """A byte-level BPE (Hugging Face `tokenizers`) of `vocab_size` tokens: lossless on any text."""

    def __init__(self, tokenizer):
        self.tokenizer, self.vocab_size = tokenizer, tokenizer.get_vocab_size()

    @classmethod
    def train(cls, files: list[Path], vocab_size: int) -> "BPETokenizer":
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

        tokenizer = Tokenizer(models.BPE())
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
        )
        tokenizer.train_from_iterator((read_text(p) for p in files), trainer)  # streamed, file by file
        return cls(tokenizer)

    @classmethod
    def load(cls, path: Path) -> "BPETokenizer":
        from tokenizers import Tokenizer

        return cls(Tokenizer.from_file(str(path)))

    def save(self, path: Path) -> None:
        self.tokenizer.save(str(path))

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text).ids

    def decode(self, ids) -> str:
        return self.tokenizer.decode([int(i) for i in ids])


def files_digest(files: list[Path], root: Path | None) -> str:
    """sha256 over every file's name (relative to `root`) and bytes, in order: it changes with the Python version."""
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path.relative_to(root) if root else path).encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


def build_shards(splits: dict[str, list[Path]], tokenizer, folder: Path, root: Path | None, digest: str) -> None:
    """Tokenise each split file by file into `<split>.bin` (uint16), then write the manifest."""
    folder.mkdir(parents=True, exist_ok=True)
    manifest = {"tokenizer": type(tokenizer).__name__, "vocab_size": tokenizer.vocab_size, "files_sha256": digest}
    manifest["splits"] = {}
    for split, files in splits.items():
        tokens = n_bytes = 0
        with open(folder / f"{split}.bin.tmp", "wb") as shard:
            for path in files:
                text = read_text(path)
                ids = np.asarray(tokenizer.encode(text), dtype=np.uint16)
                ids.tofile(shard)
                tokens, n_bytes = tokens + len(ids), n_bytes + len(text.encode("utf-8"))
        (folder / f"{split}.bin.tmp").replace(folder / f"{split}.bin")
        manifest["splits"][split] = {
            "files": [str(p.relative_to(root) if root else p) for p in files],
            "tokens": tokens,
            "bytes": n_bytes,
        }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1))  # last: its presence marks a whole cache


class WindowOffsets:
    """Where the windows of an epoch start: `count` seeded random offsets for training, or (count None) a fixed
    sweep of consecutive windows from the start, at most `limit` of them; each rank takes every world_size-th.
    Lightning finds it as `.sampler` and calls `set_epoch`."""

    def __init__(
        self, n_tokens: int, context: int, count: int | None, seed: int, rank=0, world=1, limit: int | None = None
    ):
        if n_tokens < context + 2:
            raise ValueError(f"a split of {n_tokens} tokens is shorter than one window of data.context={context}")
        self.n_tokens, self.context, self.count, self.seed, self.limit = n_tokens, context, count, seed, limit
        self.rank, self.world, self.epoch = rank, world, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def offsets(self) -> np.ndarray:
        last = self.n_tokens - self.context - 1  # a window reads context + 1 tokens (inputs and shifted targets)
        if self.count is None:  # validation / test: consecutive windows from the start
            every = np.arange(0, last + 1, self.context)[: self.limit]
        else:
            generator = np.random.default_rng([self.seed, self.epoch])
            every = generator.integers(0, last + 1, size=self.count * self.world)
        return every[self.rank :: self.world]


class TokenWindows:
    """Batches of (inputs, targets) windows, targets the inputs shifted by one token: (B, T) int64 each."""

    batch_sampler = None  # Lightning reads `.batch_sampler` before `.sampler`, as on a DataLoader

    def __init__(self, tokens: np.ndarray, sampler: WindowOffsets, batch_size: int, device: torch.device):
        self.tokens, self.sampler, self.batch_size, self.device = tokens, sampler, batch_size, device

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        steps, every = np.arange(self.sampler.context + 1), self.sampler.offsets()  # the epoch's draw, once
        for start in range(0, len(every), self.batch_size):
            offsets = every[start : start + self.batch_size]
            windows = torch.from_numpy(self.tokens[offsets[:, None] + steps].astype(np.int64))  # reads B windows
            windows = windows.to(self.device, non_blocking=True)
            yield windows[:, :-1], windows[:, 1:]

    def __len__(self) -> int:
        return math.ceil(len(self.sampler.offsets()) / self.batch_size)


class TokenDataModule(L.LightningDataModule):
    """Language modelling over a text corpus (default: the standard library) as memory-mapped token shards.

    Facts for the model: `vocab_size` (= num_classes), `input_shape` = (context,), `task` = language_model, and
    `bytes_per_token` per split, with which the LightningModule reports bits per byte (comparable across
    tokenisers and with compressors). `provenance` (files, their hash, counts) goes into metrics.json.
    """

    task = "language_model"

    def __init__(
        self,
        paths: list[str] | None = None,
        tokenizer: str = "bpe",
        vocab_size: int = 4096,
        context: int = 128,
        batch_size: int = 32,
        eval_batch_size: int = 64,
        batches_per_epoch: int = 200,
        eval_windows: int | None = 512,
        val_fraction: float = 0.02,
        test_fraction: float = 0.02,
        split_seed: int = 0,
        seed: int = 0,
        cache_dir: str = ".cache/tokens",
    ):
        super().__init__()
        choose("data.tokenizer", tokenizer, TOKENIZERS)
        if tokenizer == "bpe" and not 256 < vocab_size <= 2**16:
            raise ValueError(f"data.vocab_size={vocab_size} must be in (256, 65536] for uint16 shards")
        self.paths, self.tokenizer_name = paths, tokenizer
        self.context, self.batch_size, self.eval_batch_size = context, batch_size, eval_batch_size
        self.batches_per_epoch, self.eval_windows = batches_per_epoch, eval_windows
        self.fractions, self.split_seed, self.seed = (val_fraction, test_fraction), split_seed, seed
        self.cache_dir = Path(cache_dir)
        self.vocab_size = 256 if tokenizer == "bytes" else vocab_size
        self.num_classes, self.input_shape = self.vocab_size, (context,)
        self.folder: Path | None = None
        self.manifest: dict | None = None
        self.shards: dict[str, np.memmap] = {}

    def _files(self) -> tuple[list[Path], Path | None]:
        if self.paths:  # names relative to the folder when one folder is given
            folder = Path(self.paths[0]) if len(self.paths) == 1 and Path(self.paths[0]).is_dir() else None
            return text_files(list(self.paths)), folder
        return stdlib_files(), Path(sysconfig.get_paths()["stdlib"])

    def prepare_data(self) -> None:
        """Tokenise into the cache unless a complete cache for these files and settings is there (rank 0 only)."""
        self._cache_folder()

    def _cache_folder(self) -> Path:
        """The cache folder of these files and settings, made if missing. Found once per data module: Lightning's
        fit calls prepare_data after build_module's setup, and hashing the corpus again would read all of it."""
        if self.folder is not None:
            return self.folder
        files, root = self._files()
        digest = files_digest(files, root)
        settings = [digest, self.tokenizer_name, self.vocab_size, *self.fractions, self.split_seed]
        folder = self.cache_dir / hashlib.sha256(json.dumps(settings).encode()).hexdigest()[:16]
        splits = split_files(files, *self.fractions, self.split_seed)
        windows_fit(splits, self.context)
        if not (folder / "manifest.json").is_file():
            if self.tokenizer_name == "bpe":  # trained on the train split only
                folder.mkdir(parents=True, exist_ok=True)
                tokenizer = BPETokenizer.train(splits["train"], self.vocab_size)
                tokenizer.save(folder / "tokenizer.json")
            else:
                tokenizer = ByteTokenizer()
            build_shards(splits, tokenizer, folder, root, digest)
        self.folder = folder
        return folder

    def setup(self, stage: str | None = None) -> None:
        if self.manifest is not None:
            return
        folder = self._cache_folder()
        self.manifest = json.loads((folder / "manifest.json").read_text())
        self.shards = {
            split: np.memmap(folder / f"{split}.bin", dtype=np.uint16, mode="r")
            for split, counts in self.manifest["splits"].items()
            if counts["tokens"]
        }

    def tokenizer(self):
        """The tokenizer the shards were made with (to decode samples, or encode a prompt)."""
        if self.tokenizer_name == "bytes":
            return ByteTokenizer()
        return BPETokenizer.load(self.folder / "tokenizer.json")

    @property
    def bytes_per_token(self) -> dict[str, float]:
        splits = self.manifest["splits"]
        return {split: c["bytes"] / c["tokens"] for split, c in splits.items() if c["tokens"]}

    @property
    def provenance(self) -> dict:
        splits = self.manifest["splits"]
        return {
            "data/files_sha256": self.manifest["files_sha256"],
            "data/files": {split: c["files"] for split, c in splits.items()},
            "data/tokens": {split: c["tokens"] for split, c in splits.items()},
            "data/bytes": {split: c["bytes"] for split, c in splits.items()},
        }

    def split_sizes(self) -> dict[str, int]:
        """Whole context windows per split (a window's targets reach one token past it)."""
        splits = self.manifest["splits"]
        return {split: max(0, (c["tokens"] - 1) // self.context) for split, c in splits.items()}

    def example_input(self) -> Tensor:
        return torch.from_numpy(self.shards["train"][: self.context].astype(np.int64))[None]

    def _windows(self, split: str, count: int | None, batch_size: int) -> TokenWindows:
        trainer = self.trainer
        rank, world = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        device = trainer.strategy.root_device if trainer is not None else torch.device("cpu")
        offsets = WindowOffsets(
            len(self.shards[split]), self.context, count, self.seed, rank, world, limit=self.eval_windows
        )
        return TokenWindows(self.shards[split], offsets, batch_size, device)

    def train_dataloader(self) -> TokenWindows:
        return self._windows("train", self.batches_per_epoch * self.batch_size, self.batch_size)

    def val_dataloader(self) -> TokenWindows:  # the same first `eval_windows` windows every time
        return self._windows("val", None, self.eval_batch_size)

    def test_dataloader(self) -> TokenWindows:
        return self._windows("test", None, self.eval_batch_size)
