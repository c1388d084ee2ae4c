"""Hyperparameter transfer across width: the same learning-rate sweep at several widths, standard vs muP.

    python bench/hp_transfer.py [--model mlp|gpt] [--widths ...] [--seeds 3]

--model gpt: the GPT on data=stdlib instead (depth 2, 4 heads, base width 64, context 64, batch 16, one epoch of
100 steps without a schedule, val/loss over 128 windows; widths 64, 128, 256).

Each (parametrisation, width) is one real sweep: `python train.py -m hparams_search=lr_transfer model.width=W
model.parametrization=P` (the study sweeper, a grid of 9 learning rates 2^-13 .. 2^-5, AdamW, 10 epochs of digits,
early stopping off; the objective is val/loss of the best checkpoint). Then the transfer test: at the widest width,
the LR that was best at the narrowest width against the LR that was best at the widest itself, each trained with
`--seeds` seeds (mean +- std of val/loss). Writes the "Hyperparameter transfer" section of bench/results.md and
bench/hp_transfer.png (val/loss vs LR, one curve per width, one panel per parametrisation).
"""

import argparse
import json
import math
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from report import publish

ROOT = Path(__file__).resolve().parents[1]
PARAMETRIZATIONS = ("standard", "mup")
PROFILES = {  # overrides every run of the model gets, the default widths, epochs of a run, what the plot calls it
    "mlp": ([], [64, 128, 256, 1024], 10, "10 epochs of digits"),
    "gpt": (
        [
            "data=stdlib",
            "model=gpt",
            "model.depth=2",
            "model.heads=4",
            "model.base_width=64",
            "data.context=64",
            "batch_size=16",
            "data.batches_per_epoch=100",
            "data.eval_windows=128",
        ],
        [64, 128, 256],
        1,
        "100 steps of data=stdlib",
    ),
}


def sweep(log_dir: Path, width: int, parametrization: str, extra: list[str], epochs: int) -> dict[float, float]:
    """{lr: val/loss} of one real lr_transfer study."""
    command = [
        sys.executable,
        str(ROOT / "train.py"),
        "-m",
        "hparams_search=lr_transfer",
        *extra,
        f"trainer.max_epochs={epochs}",
        f"model.width={width}",
        f"model.parametrization={parametrization}",
        "callbacks.rich_progress_bar=null",
        f"paths.log_dir={log_dir}",
    ]
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
    study = log_dir / "train" / "studies" / f"lr_transfer_{parametrization}_w{width}"
    losses = {}
    for job in study.iterdir():
        if (job / "metrics.json").is_file():
            overrides = (job / ".hydra" / "overrides.yaml").read_text()
            lr = float(next(line.split("lr=")[1] for line in overrides.splitlines() if "- lr=" in line))
            losses[lr] = json.loads((job / "metrics.json").read_text())["val/loss"]
    return dict(sorted(losses.items()))


def seeded(
    log_dir: Path, width: int, parametrization: str, lr: float, seeds: int, extra: list[str], epochs: int
) -> list[float]:
    """val/loss of `seeds` runs (seed 0, 1, ...) with the sweep's protocol at one lr."""
    command = [
        sys.executable,
        str(ROOT / "train.py"),
        "-m",
        *extra,
        f"seed={','.join(str(s) for s in range(seeds))}",
        f"lr={lr!r}",
        f"model.width={width}",
        f"model.parametrization={parametrization}",
        f"trainer.max_epochs={epochs}",
        "callbacks.early_stopping=null",
        "callbacks.rich_progress_bar=null",
        "test=false",
        f"paths.log_dir={log_dir}",
        f"hydra.sweep.dir={log_dir}/seeded",
    ]
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
    return [json.loads((log_dir / "seeded" / str(s) / "metrics.json").read_text())["val/loss"] for s in range(seeds)]


def plot(curves: dict[str, dict[int, dict[float, float]]], path: Path, run: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for axis, (parametrization, by_width) in zip(axes, curves.items(), strict=True):
        for width, losses in by_width.items():
            axis.plot([math.log2(lr) for lr in losses], list(losses.values()), marker="o", label=f"width {width}")
        axis.set_title(f"{parametrization} parametrisation")
        axis.set_xlabel("log2(learning rate)")
        axis.set_yscale("log")
        axis.legend()
    axes[0].set_ylabel(f"val/loss (best checkpoint, {run})")
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", choices=list(PROFILES), default="mlp")
    parser.add_argument("--widths", type=int, nargs="+")
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    extra, default_widths, epochs, run = PROFILES[args.model]
    args.widths = args.widths or default_widths
    narrow, wide = min(args.widths), max(args.widths)
    figure = "hp_transfer.png" if args.model == "mlp" else f"hp_transfer_{args.model}.png"
    curves: dict[str, dict[int, dict[float, float]]] = {}
    rows = [
        f"Learning-rate grid 2^-13 .. 2^-5, AdamW, {run}, objective val/loss; widths {args.widths} "
        f"({wide // narrow}x range). Plot: bench/{figure}.",
        "",
        "| parametrisation | " + " | ".join(f"best log2(lr) at width {w}" for w in args.widths) + " | shift |",
        "|---|" + "---|" * (len(args.widths) + 1),
    ]
    transfer = []
    with tempfile.TemporaryDirectory() as folder:
        for parametrization in PARAMETRIZATIONS:
            curves[parametrization] = {
                w: sweep(Path(folder) / f"{parametrization}{w}", w, parametrization, extra, epochs) for w in args.widths
            }
            best = {w: min(losses, key=losses.get) for w, losses in curves[parametrization].items()}
            logs = [math.log2(best[w]) for w in args.widths]
            rows.append(
                f"| {parametrization} | " + " | ".join(f"{x:.0f}" for x in logs) + f" | {max(logs) - min(logs):.0f} |"
            )
            protocol = (args.seeds, extra, epochs)
            reused = seeded(Path(folder) / f"reuse_{parametrization}", wide, parametrization, best[narrow], *protocol)
            direct = seeded(Path(folder) / f"direct_{parametrization}", wide, parametrization, best[wide], *protocol)
            transfer.append((parametrization, best[narrow], reused, best[wide], direct))
    rows += [
        "",
        f"Transfer: width {wide} trained with the LR found at width {narrow}, against the LR found at width {wide} "
        f"itself; val/loss over {args.seeds} seeds (mean +- std).",
        "",
        f"| parametrisation | LR from width {narrow} | val/loss | LR from width {wide} | val/loss |",
        "|---|---|---|---|---|",
    ]
    for parametrization, lr_narrow, reused, lr_wide, direct in transfer:
        rows.append(
            f"| {parametrization} | 2^{math.log2(lr_narrow):.0f} | {statistics.mean(reused):.4f} +- "
            f"{statistics.stdev(reused):.4f} | 2^{math.log2(lr_wide):.0f} | {statistics.mean(direct):.4f} +- "
            f"{statistics.stdev(direct):.4f} |"
        )
    rows += ["", "val/loss per LR (rows) and width (columns):", ""]
    for parametrization, by_width in curves.items():
        rows += [f"{parametrization}:", "", "| log2(lr) | " + " | ".join(str(w) for w in args.widths) + " |"]
        rows.append("|---|" + "---|" * len(args.widths))
        for lr in by_width[narrow]:
            rows.append(f"| {math.log2(lr):.0f} | " + " | ".join(f"{by_width[w][lr]:.4f}" for w in args.widths) + " |")
        rows.append("")
    plot(curves, Path(__file__).resolve().parent / figure, run)
    title = "Hyperparameter transfer" + (" (GPT)" if args.model == "gpt" else "")
    publish(title, f"python bench/hp_transfer.py --model {args.model}", rows)


if __name__ == "__main__":
    main()
