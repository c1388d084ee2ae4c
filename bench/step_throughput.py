"""Training throughput: train.py's default path against hand-written PyTorch loops over the same network and data.

    python bench/step_throughput.py [--repeats 5] [--only mlp-256]

For each setting (the default MLP at width 256 and 2048, the CNN and the ResNet on digits) three variants train
the same network (built by hyperlab from the config, then deep-copied) on the same standardised train split,
batch 64, AdamW lr 1e-3, for the same epochs, with a validation pass over the same 180 rows after every epoch:
  loop         a hand-written loop as people write it: torch's defaults (AdamW without `fused`), batches sliced
               from in-memory tensors by a per-epoch randperm, argmax accuracy on validation;
  loop-fused   the same loop with `torch.optim.AdamW(..., fused=True)`;
  hyperlab     `train.py`'s own objects for that config (build_module + build_trainer): checkpoints (best + last
               every epoch), LR monitor, progress bar and CSV logger on; early stopping off so every variant runs
               all epochs; no sanity check and no test pass.
Then the cost of checkpointing at width 2048: hyperlab with checkpoints every epoch against
`callbacks.model_checkpoint=null` (no checkpoints at all).
Timed: fit only (no imports, no building). Steps per second = optimizer steps / wall seconds of fit. Variants
of a setting run interleaved, `--repeats` rounds; the table gives medians.
"""

import argparse
import copy
import logging
import statistics
import tempfile
import time
import warnings

import torch
import torch.nn.functional as F
from report import publish

from hyperlab.config import compose
from hyperlab.train import build_module, build_trainer

warnings.filterwarnings("ignore")
logging.getLogger("lightning").setLevel(logging.ERROR)

SETTINGS = {  # name: (overrides, epochs)
    "mlp-256": ([], 20),
    "mlp-2048": (["model.width=2048"], 5),
    "cnn": (["model=cnn"], 5),
    "resnet": (["model=resnet"], 3),
}
EVERY_EPOCH = ["callbacks.early_stopping=null", "++trainer.num_sanity_val_steps=0", "test=false"]


def built(overrides: list[str], epochs: int):
    cfg = compose([f"trainer.max_epochs={epochs}", *EVERY_EPOCH, *overrides], tempfile.mkdtemp())
    datamodule, module = build_module(cfg)
    return cfg, datamodule, module


def hand_written(overrides: list[str], epochs: int, fused: bool):
    """A loop over hyperlab's own network and split tensors: what a researcher writes by hand."""
    _, datamodule, module = built(overrides, epochs)
    (x, y), (vx, vy) = datamodule.splits["train"].tensors[:2], datamodule.splits["val"].tensors[:2]
    net = copy.deepcopy(module.net)
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3, fused=fused or None)

    def fit() -> int:
        steps = 0
        for epoch in range(epochs):
            net.train()
            for index in torch.randperm(len(x), generator=torch.Generator().manual_seed(epoch)).split(64):
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
    trainer = build_trainer(cfg, {})

    def fit() -> int:
        trainer.fit(module, datamodule=datamodule)
        return trainer.global_step

    return fit


def measure(variants: dict, repeats: int) -> dict[str, list[float]]:
    rates: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name, make in variants.items():  # interleaved: drift in machine load hits every variant alike
            fit = make()  # building is not timed
            start = time.perf_counter()
            steps = fit()
            rates[name].append(steps / (time.perf_counter() - start))
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--only", nargs="*", default=[*SETTINGS, "checkpoints"])
    args = parser.parse_args()
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
            },
            args.repeats,
        )
        body += ["", f"### {name} ({' '.join(overrides) or 'default config'}, {epochs} epochs)", ""]
        body += table(rates, ("loop", "loop-fused"))
    if "checkpoints" in args.only:
        wide = ["model.width=2048"]
        rates = measure(
            {
                "no checkpoints": lambda: hyperlab([*wide, "callbacks.model_checkpoint=null"], 5),
                "checkpoint every epoch": lambda: hyperlab(wide, 5),
            },
            args.repeats,
        )
        medians = {name: statistics.median(r) for name, r in rates.items()}
        cost = medians["no checkpoints"] / medians["checkpoint every epoch"] - 1
        body += ["", "### Checkpoint cost (model.width=2048, 5 epochs, best + last every epoch)", ""]
        body += table(rates, ("no checkpoints",))
        body += ["", f"Fit time added by checkpointing every epoch: {cost:.1%} (target <= 3%)."]
    publish("Step throughput", "python bench/step_throughput.py", body)


if __name__ == "__main__":
    main()
