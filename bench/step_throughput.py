"""Step throughput: hyperlab's default training path vs a raw PyTorch loop and stock Lightning.

    python bench/step_throughput.py [--repeats 5] [--epochs 20]

All variants train the same MLP (64-256-256-10) on the same standardised digits train split (1257 rows), batch
64, AdamW lr 1e-3, for the same epochs, with a validation pass over the same 180 rows after every epoch:
  raw          a PyTorch loop over in-memory tensors (randperm + index per batch), the ceiling;
  lightning    stock Lightning as a template typically runs it: a DataLoader over a TensorDataset, torchmetrics
               accuracy and losses logged per epoch, the Trainer's default callbacks (progress bar, checkpoint
               every epoch) and default logger;
  lightning-lean  the same module and DataLoaders with no callbacks, logger, progress bar or checkpoints:
               the cost of Lightning's loop itself;
  hyperlab     `train.py`'s own objects for the default config (build_module + build_trainer: device-resident
               batches, checkpoints, early stopping off so every variant runs all epochs, csv logger);
  hyperlab-dl  the same with `data.device_resident=false` (DataLoaders), to isolate the batch path.
Timed: `fit` only (no imports, no test pass). Variants run interleaved, `--repeats` rounds, median per variant.
"""

import argparse
import logging
import statistics
import tempfile
import time
import warnings

import lightning as L
import torch
import torch.nn.functional as F
from report import publish
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torchmetrics.classification import MulticlassAccuracy

from hyperlab.config import compose
from hyperlab.train import build_module, build_trainer

warnings.filterwarnings("ignore")
logging.getLogger("lightning").setLevel(logging.ERROR)


def digits_tensors():
    """The default config's own splits, so every variant sees identical rows."""
    datamodule, _ = build_module(compose([], tempfile.mkdtemp()))
    train, val = datamodule.splits["train"].tensors, datamodule.splits["val"].tensors
    return (train[0].flatten(1), train[1]), (val[0].flatten(1), val[1])


def mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))


def raw_loop(train, val, epochs: int) -> int:
    (x, y), (vx, vy) = train, val
    net = mlp()
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=0.0)
    steps = 0
    for epoch in range(epochs):
        net.train()
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(epoch))
        for index in order.split(64):
            loss = F.cross_entropy(net(x[index]), y[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            steps += 1
        net.eval()
        with torch.no_grad():
            (net(vx).argmax(1) == vy).float().mean().item()
    return steps


class StockModule(L.LightningModule):
    """What a template's LightningModule typically looks like."""

    def __init__(self):
        super().__init__()
        self.net = mlp()
        self.train_acc, self.val_acc = MulticlassAccuracy(10), MulticlassAccuracy(10)

    def training_step(self, batch, batch_idx):
        x, y = batch
        logits = self.net(x)
        loss = F.cross_entropy(logits, y)
        self.train_acc(logits, y)
        self.log("train/loss", loss, on_step=False, on_epoch=True, prog_bar=True)
        self.log("train/acc", self.train_acc, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self.net(x)
        self.val_acc(logits, y)
        self.log("val/loss", F.cross_entropy(logits, y), prog_bar=True)
        self.log("val/acc", self.val_acc, prog_bar=True)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=1e-3)


def lightning_fit(train, val, epochs: int, **trainer_kwargs) -> int:
    """StockModule with DataLoaders; Trainer defaults (callbacks, logger, progress bar) unless overridden."""
    trainer = L.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, num_sanity_val_steps=0, **trainer_kwargs)
    trainer.fit(
        StockModule(),
        DataLoader(TensorDataset(*train), batch_size=64, shuffle=True),
        DataLoader(TensorDataset(*val), batch_size=64),
    )
    return trainer.global_step


# Lightning's own floor: the same module and loaders with nothing attached
LEAN = {"logger": False, "enable_checkpointing": False, "enable_progress_bar": False, "enable_model_summary": False}


def hyperlab(epochs: int, *overrides: str):
    every_epoch = [f"trainer.max_epochs={epochs}", "callbacks.early_stopping=null", "++trainer.num_sanity_val_steps=0"]
    cfg = compose([*every_epoch, *overrides], tempfile.mkdtemp())
    datamodule, module = build_module(cfg)
    trainer = build_trainer(cfg, {})

    def fit() -> int:
        trainer.fit(module, datamodule=datamodule)
        return trainer.global_step

    return fit


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args()
    train, val = digits_tensors()
    variants = {
        "raw": lambda: lambda: raw_loop(train, val, args.epochs),
        "lightning": lambda: lambda: lightning_fit(train, val, args.epochs, default_root_dir=tempfile.mkdtemp()),
        "lightning-lean": lambda: lambda: lightning_fit(train, val, args.epochs, **LEAN),
        "hyperlab": lambda: hyperlab(args.epochs),
        "hyperlab-dl": lambda: hyperlab(args.epochs, "data.device_resident=false"),
    }
    rates: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.repeats):
        for name, make in variants.items():  # interleaved: drift in machine load hits every variant alike
            fit = make()  # building is not timed
            start = time.perf_counter()
            steps = fit()
            rates[name].append(steps / (time.perf_counter() - start))
    medians = {name: statistics.median(r) for name, r in rates.items()}
    body = [
        f"{args.epochs} epochs x 20 steps (batch 64) + a validation pass per epoch; median of {args.repeats} "
        "interleaved repeats.",
        "",
        "| variant | steps/s (median) | min..max | vs raw |",
        "|---|---|---|---|",
    ]
    for name, r in rates.items():
        body.append(
            f"| {name} | {medians[name]:.0f} | {min(r):.0f}..{max(r):.0f} | {medians[name] / medians['raw']:.2f}x |"
        )
    publish("Step throughput", "python bench/step_throughput.py", body)


if __name__ == "__main__":
    main()
