"""Training throughput: train.py's default path against hand-written PyTorch loops over the same network and data.

    python bench/step_throughput.py [--repeats 5] [--only mlp-256] [--device cuda]

For each setting (the default MLP at width 256 and 2048, the CNN and the ResNet on digits) three variants train
the same network (built by hyperlab from the config, then deep-copied) on the same standardised train split,
batch 64, AdamW lr 1e-3, for the same epochs, with a validation pass over the same 180 rows after every epoch:
  loop         a hand-written loop as people write it: torch's defaults (AdamW without `fused`), batches sliced
               from in-memory tensors by a per-epoch randperm, argmax accuracy on validation;
  loop-fused   the same loop with `torch.optim.AdamW(..., fused=True)`;
  hyperlab     `train.py`'s own objects for that config (build_module + build_trainer): checkpoints (best + last
               every epoch), LR monitor, progress bar and CSV logger on; early stopping off so every variant runs
               all epochs; no sanity check and no test pass; and the same with `callbacks.model_checkpoint=null`;
  lightning-stock  Lightning as a user sets it up with what hyperlab's default run has on: the lean module with
               fused AdamW logging train/loss, val/loss and val/acc through `self.log`, and Lightning's own
               ModelCheckpoint (best by val/loss + last, written every epoch), LearningRateMonitor (every step),
               RichProgressBar and CSVLogger; and the same with no checkpoints: Lightning's floor with the
               default callbacks, logger and bar on;
  lightning-lean (fused)  the least a Trainer-based loop can be: a LightningModule with the loop's step and
               validation and fused AdamW, no callbacks, logger, progress bar or checkpoints (Lightning's floor).
Then the cost of checkpointing every epoch at width 2048, per checkpoint writer, against
`callbacks.model_checkpoint=null` (no checkpoints at all), and the floor a plain write of the same bytes sets.
Then, for the default MLP and the ResNet, fit time split into a cost per fit and a cost per epoch (fits of 1 and
8 epochs), for hyperlab, hyperlab's module with no checkpoints, LR monitor, progress bar or logger, Lightning's floor
and the loop: what the ratios above are made of. With `--device cuda` every variant trains on the GPU (hyperlab
with `trainer=gpu`, the loops on device tensors) and the section is "Step throughput (GPU)". Timed: fit only (no
imports, no building; the GPU is synchronised first). Steps per second = optimizer steps / wall seconds of fit.
Variants of a setting run interleaved, `--repeats` rounds; the tables give medians.
"""

import argparse
import copy
import logging
import os
import statistics
import tempfile
import time
import warnings

import lightning as L
import torch
import torch.nn.functional as F
from report import median_time, publish

from hyperlab.builders import build_module, build_trainer, run_callbacks
from hyperlab.config.cli import compose

warnings.filterwarnings("ignore")
logging.getLogger("lightning").setLevel(logging.ERROR)

SETTINGS = {  # name: (overrides, epochs)
    "mlp-256": ([], 20),
    "mlp-2048": (["model.width=2048"], 5),
    "cnn": (["model=cnn"], 5),
    "resnet": (["model=resnet"], 3),
}
EVERY_EPOCH = ["callbacks.early_stopping=null", "++trainer.num_sanity_val_steps=0", "test=false"]
DEVICE = torch.device("cpu")  # --device; hyperlab's variants then add trainer=gpu


def built(overrides: list[str], epochs: int):
    on_gpu = ["trainer=gpu"] if DEVICE.type == "cuda" else []
    cfg = compose([f"trainer.max_epochs={epochs}", *EVERY_EPOCH, *on_gpu, *overrides], tempfile.mkdtemp())
    datamodule, module = build_module(cfg)
    return cfg, datamodule, module


def hand_written(overrides: list[str], epochs: int, fused: bool):
    """A loop over hyperlab's own network and split tensors: what a researcher writes by hand."""
    _, datamodule, module = built(overrides, epochs)
    x, y, vx, vy = (
        t.to(DEVICE) for t in (*datamodule.splits["train"].tensors[:2], *datamodule.splits["val"].tensors[:2])
    )
    net = copy.deepcopy(module.net).to(DEVICE)
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3, fused=fused or None)

    def fit() -> int:
        steps = 0
        for epoch in range(epochs):
            net.train()
            order = torch.randperm(len(x), generator=torch.Generator().manual_seed(epoch)).to(DEVICE)
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

    return fit


def hyperlab(overrides: list[str], epochs: int):
    cfg, datamodule, module = built(overrides, epochs)
    trainer = build_trainer(cfg.trainer, cfg.callbacks, cfg.logger, run_callbacks({}, cfg.optimized_metric))

    def fit() -> int:
        trainer.fit(module, datamodule=datamodule)
        return trainer.global_step

    return fit


class Lean(L.LightningModule):
    """The least a LightningModule can be: the hand-written loop's step and validation, fused AdamW, nothing logged."""

    def __init__(self, net: torch.nn.Module):
        super().__init__()
        self.net = net

    def training_step(self, batch, batch_idx):
        x, y = batch[:2]
        return F.cross_entropy(self.net(x), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch[:2]
        (self.net(x).argmax(1) == y).float().mean()

    def configure_optimizers(self):
        return torch.optim.AdamW(self.net.parameters(), lr=1e-3, fused=True)


def lightning_lean(overrides: list[str], epochs: int):
    """Lightning's floor for this setting: Lean on the same in-memory batches, a Trainer with no callbacks, logger,
    progress bar, checkpoints or sanity check."""
    _, datamodule, module = built(overrides, epochs)
    trainer = plain_trainer(epochs, logger=False, enable_checkpointing=False, enable_progress_bar=False)
    return fitting(trainer, Lean(copy.deepcopy(module.net)), datamodule)


def plain_trainer(epochs: int, **settings) -> L.Trainer:
    """A Trainer built by hand (no hyperlab): `settings` on top of no model summary and no sanity check."""
    device = "gpu" if DEVICE.type == "cuda" else "cpu"
    return L.Trainer(
        max_epochs=epochs, enable_model_summary=False, num_sanity_val_steps=0, accelerator=device, devices=1, **settings
    )


def fitting(trainer: L.Trainer, module: L.LightningModule, datamodule):
    def fit() -> int:
        trainer.fit(module, datamodule=datamodule)
        return trainer.global_step

    return fit


class Logged(Lean):
    """Lean as a Lightning user writes it with logging: the epoch's train loss, val loss and val accuracy through
    `self.log` (the loss and accuracy on the bar), as the default callbacks, logger and bar need them."""

    def training_step(self, batch, batch_idx):
        loss = super().training_step(batch, batch_idx)
        self.log("train/loss", loss, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch[:2]
        logits = self.net(x)
        self.log("val/loss", F.cross_entropy(logits, y), prog_bar=True)
        self.log("val/acc", (logits.argmax(1) == y).float().mean(), prog_bar=True)


def lightning_stock(overrides: list[str], epochs: int, checkpoints: bool = True):
    """Lightning's floor with what hyperlab's default run has on: Logged, and Lightning's own ModelCheckpoint
    (best by val/loss and last.ckpt, written every epoch; or none), LearningRateMonitor, RichProgressBar and
    CSVLogger."""
    _, datamodule, module = built(overrides, epochs)
    folder = tempfile.mkdtemp()
    saves = [L.pytorch.callbacks.ModelCheckpoint(f"{folder}/checkpoints", monitor="val/loss", save_last=True)]
    trainer = plain_trainer(
        epochs,
        logger=L.pytorch.loggers.CSVLogger(folder, name="csv", version=""),
        callbacks=[
            *(saves if checkpoints else []),
            L.pytorch.callbacks.LearningRateMonitor(logging_interval="step"),
            L.pytorch.callbacks.RichProgressBar(),
        ],
        enable_checkpointing=checkpoints,
    )
    return fitting(trainer, Logged(copy.deepcopy(module.net)), datamodule)


def synchronize() -> None:
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()


def timed(fit) -> tuple[object, float]:
    """`fit()`'s result and its wall seconds, with the GPU's queued work finished before and after."""
    synchronize()
    start = time.perf_counter()
    result = fit()
    synchronize()
    return result, time.perf_counter() - start


def measure(variants: dict, repeats: int) -> dict[str, list[float]]:
    rates: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name, make in variants.items():  # interleaved: drift in machine load hits every variant alike
            fit = make()  # building is not timed
            steps, seconds = timed(fit)
            rates[name].append(steps / seconds)
    return rates


def table(rates: dict[str, list[float]], baselines: tuple[str, ...]) -> list[str]:
    medians = {name: statistics.median(r) for name, r in rates.items()}
    rows = [
        "| variant | steps/s (median) | min..max | " + " | ".join(f"vs {b}" for b in baselines) + " |",
        "|---|---|---|" + "---|" * len(baselines),
    ]
    for name, r in rates.items():
        ratios = " | ".join(f"{medians[name] / medians[b]:.2f}x" for b in baselines)
        rows.append(f"| {name} | {medians[name]:.0f} | {min(r):.0f}..{max(r):.0f} | {ratios} |")
    return rows


def checkpoint_cost(repeats: int) -> list[str]:
    """Fit time at width 2048 (5 epochs, a ~50 MB checkpoint per epoch) with each checkpoint writer, and the floor:
    the same bytes written by one plain `write` call per epoch, as a share of the fit without checkpoints."""
    wide, epochs = ["model.width=2048", "callbacks.model_checkpoint.write_every_s=0"], 5  # each save written
    background = "trainer.plugins=[{_target_:hyperlab.training.checkpoints.BackgroundCheckpointIO}]"
    variants = {
        "no checkpoints": [*wide, "callbacks.model_checkpoint=null"],
        "held, written every 30 s and at the end (default)": ["model.width=2048"],
        "synchronous, hyperlab's writer": wide,
        "background thread (trainer=gpu's writer)": [*wide, background],
        "synchronous, Lightning's writer": [*wide, "trainer.plugins=null"],
    }
    seconds = {name: [] for name in variants}
    for _ in range(repeats):
        for name, overrides in variants.items():
            fit = hyperlab(overrides, epochs)
            seconds[name].append(timed(fit)[1])
    fit_s = {name: statistics.median(s) for name, s in seconds.items()}
    base = fit_s["no checkpoints"]
    size = checkpoint_bytes(wide)
    payload = bytearray(size)
    with tempfile.TemporaryDirectory() as folder:

        def write() -> None:
            with open(f"{folder}/raw.bin", "wb") as file:
                file.write(payload)

        floor = epochs * median_time(write, 7)
    rows = [
        f"### Checkpoint cost (model.width=2048, {epochs} epochs, a {size / 2**20:.0f} MB checkpoint every epoch)",
        "",
        "| writer | fit s (median) | added to fit time |",
        "|---|---|---|",
    ]
    rows += [f"| {name} | {s:.3f} | {s / base - 1:+.1%} |" for name, s in fit_s.items()]
    rows += [
        "",
        f"Floor: one plain `write` of the same {size / 2**20:.0f} MB per epoch takes {floor / base:.1%} of the fit "
        "time without checkpoints (target for checkpointing every epoch: <= 3%).",
    ]
    return rows


def targets(medians: dict[str, dict[str, float]]) -> list[str]:
    """The issue's targets (hyperlab's default path against the hand-written loops), reached or not."""
    goals = [("mlp-2048", "loop", 1.0), ("mlp-2048", "loop-fused", 0.95), ("mlp-256", "loop", 0.63)]
    rows = [
        "### Targets",
        "",
        "| setting | hyperlab vs | target | reached | without checkpoints | Lightning's floor (lean, fused) | "
        "Lightning, stock callbacks, logger and bar (no checkpoints) |",
        "|---|---|---|---|---|---|---|",
    ]
    for setting, baseline, goal in goals:
        if setting not in medians:
            continue
        m = medians[setting]
        ratio, bare = m["hyperlab"] / m[baseline], m["hyperlab, no checkpoints"] / m[baseline]
        rows.append(
            f"| {setting} | {baseline} | >= {goal:.2f}x | {ratio:.2f}x {'met' if ratio >= goal else 'MISSED'} | "
            f"{bare:.2f}x | {m['lightning-lean (fused)'] / m[baseline]:.2f}x | "
            f"{m['lightning-stock'] / m[baseline]:.2f}x ({m['lightning-stock, no checkpoints'] / m[baseline]:.2f}x) |"
        )
    return rows


BARE = [  # hyperlab's module and Trainer settings without the four optional callbacks and the logger
    "callbacks.model_checkpoint=null",
    "callbacks.lr_monitor=null",
    "callbacks.rich_progress_bar=null",
    "~logger",
    "trainer.enable_progress_bar=false",
    "+trainer.enable_checkpointing=false",
]


def per_fit_and_per_epoch(setting: str, repeats: int) -> list[str]:
    """Fit time = a cost per fit + epochs x a cost per epoch (20 steps and one validation pass), from the medians
    of interleaved fits of 1 and 8 epochs."""
    overrides, _ = SETTINGS[setting]
    variants = {
        "hyperlab": lambda e: hyperlab(overrides, e),
        "hyperlab, no checkpoints, LR monitor, bar or logger": lambda e: hyperlab([*overrides, *BARE], e),
        "lightning-lean (fused)": lambda e: lightning_lean(overrides, e),
        "loop": lambda e: hand_written(overrides, e, fused=False),
    }
    seconds = {(name, e): [] for name in variants for e in (1, 8)}
    for _ in range(repeats):
        for name, make in variants.items():
            for e in (1, 8):
                seconds[name, e].append(timed(make(e))[1])
    median = {key: statistics.median(s) for key, s in seconds.items()}
    epoch = {name: (median[name, 8] - median[name, 1]) / 7 for name in variants}
    rows = [
        f"#### {setting}: fit time = per fit + epochs x per epoch (20 steps, one validation pass)",
        "",
        "| variant | per fit ms | per epoch ms | per epoch vs loop |",
        "|---|---|---|---|",
    ]
    for name in variants:
        fixed = median[name, 1] - epoch[name]
        rows.append(f"| {name} | {1000 * fixed:.1f} | {1000 * epoch[name]:.1f} | {epoch['loop'] / epoch[name]:.2f}x |")
    return rows


def gpu_targets(medians: dict[str, dict[str, float]]) -> list[str]:
    """On a GPU the issue's target is the ResNet: >= 0.95x the hand-written loop."""
    if "resnet" not in medians:
        return []
    m = medians["resnet"]
    rows = ["| setting | hyperlab vs | target | reached | Lightning's floor (lean, fused) |", "|---|---|---|---|---|"]
    for baseline in ("loop", "loop-fused"):
        ratio = m["hyperlab"] / m[baseline]
        rows.append(
            f"| resnet | {baseline} | >= 0.95x | {ratio:.2f}x {'met' if ratio >= 0.95 else 'MISSED'} | "
            f"{m['lightning-lean (fused)'] / m[baseline]:.2f}x |"
        )
    return ["### Target on the GPU", "", *rows]


def checkpoint_bytes(overrides: list[str]) -> int:
    cfg, datamodule, module = built([*overrides, "trainer.max_epochs=1"], 1)
    trainer = build_trainer(cfg.trainer, cfg.callbacks, cfg.logger, run_callbacks({}, cfg.optimized_metric))
    trainer.fit(module, datamodule=datamodule)
    return os.path.getsize(trainer.checkpoint_callback.last_model_path)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--only", nargs="*", default=[*SETTINGS, "checkpoints"])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    args = parser.parse_args()
    global DEVICE
    DEVICE = torch.device(args.device)
    medians: dict[str, dict[str, float]] = {}
    body = [
        f"Each setting: its variants interleaved, {args.repeats} rounds, medians. Batch 64, 20 steps per epoch, a "
        "validation pass per epoch.",
    ]
    for name, (overrides, epochs) in SETTINGS.items():
        if name not in args.only:
            continue
        rates = measure(
            {
                "loop": lambda o=overrides, e=epochs: hand_written(o, e, fused=False),
                "loop-fused": lambda o=overrides, e=epochs: hand_written(o, e, fused=True),
                "hyperlab": lambda o=overrides, e=epochs: hyperlab(o, e),
                "hyperlab, no checkpoints": lambda o=overrides, e=epochs: hyperlab(
                    [*o, "callbacks.model_checkpoint=null"], e
                ),
                "lightning-lean (fused)": lambda o=overrides, e=epochs: lightning_lean(o, e),
                "lightning-stock": lambda o=overrides, e=epochs: lightning_stock(o, e),
                "lightning-stock, no checkpoints": lambda o=overrides, e=epochs: lightning_stock(o, e, False),
            },
            args.repeats,
        )
        body += ["", f"### {name} ({' '.join(overrides) or 'default config'}, {epochs} epochs)", ""]
        body += table(rates, ("loop", "loop-fused"))
        medians[name] = {variant: statistics.median(r) for variant, r in rates.items()}
    if "checkpoints" in args.only:
        body += ["", *checkpoint_cost(args.repeats)]
    decomposed = [s for s in ("mlp-256", "resnet") if s in args.only]
    if decomposed:
        body += ["", "### Per fit and per epoch"]
        for setting in decomposed:
            body += ["", *per_fit_and_per_epoch(setting, args.repeats)]
    body += ["", *targets(medians)]
    if DEVICE.type == "cuda":
        body += ["", *gpu_targets(medians)]
        publish(
            "Step throughput (GPU)", f"python bench/step_throughput.py --device cuda --repeats {args.repeats}", body
        )
        return
    chosen = "" if args.only == parser.get_default("only") else f" --only {' '.join(args.only)}"
    publish("Step throughput", f"python bench/step_throughput.py --repeats {args.repeats}{chosen}", body)


if __name__ == "__main__":
    main()
