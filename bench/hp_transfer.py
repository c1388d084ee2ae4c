"""Hyperparameter transfer across width: the same learning-rate sweep at several widths, standard vs muP.

    python bench/hp_transfer.py [--model mlp|gpt] [--widths ...] [--seeds 3]
    python bench/hp_transfer.py --model gpt --parametrizations mup --output-multiplier 8 --log2-lrs -8 -7 -6 -5 -4 -3

--output-multiplier: muP's alpha_out (model.output_multiplier, tuned at the base width), in runs, a section and
a plot of their own; --parametrizations and --log2-lrs narrow the sweep to what a question needs.

--model gpt: the GPT on data=stdlib instead, the GPT recipe's optimizer (AdamW betas 0.9/0.95, weight decay 0.1 on
matrices, clipping at 1.0) at a CPU's scale: depth 2, 4 heads, byte tokens, context 64, batch 32, 500 steps
(1.02M tokens a run) of 50 warmup steps then cosine to 0, widths 32, 64, 128, 256 (8x) with base width 32, a
grid of 8 LRs 2^-11 .. 2^-4, objective val/bpb over 256 windows.

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
from pathlib import Path

from report import kept, publish

ROOT = Path(__file__).resolve().parents[1]
PARAMETRIZATIONS = ("standard", "mup")
GPT_LRS = [2.0**k for k in range(-11, -3)]  # 2^-11 .. 2^-4, a factor 2 apart
PROFILES = {  # overrides every run gets, default widths, epochs of a run, what the plot calls it, metric, LR grid
    "mlp": ([], [64, 128, 256, 1024], 10, "10 epochs of digits", "val/loss", None),
    "gpt": (
        [
            "data=stdlib",
            "model=gpt",
            "data.tokenizer=bytes",
            "model.depth=2",
            "model.heads=4",
            "model.base_width=32",
            "data.context=64",
            "batch_size=32",
            "data.batches_per_epoch=100",
            "data.eval_windows=256",
            "weight_decay=0.1",
            "no_decay_bias_norm=true",
            "optimizer.betas=[0.9,0.95]",
            "trainer.gradient_clip_val=1.0",
            "scheduler=cosine",
            "scheduler.warmup_steps=50",
            "optimized_metric=val/bpb",
            "hydra.sweeper.objectives=[val/bpb]",
        ],
        [32, 64, 128, 256],
        5,
        "500 steps (1.02M byte tokens) of data=stdlib",
        "val/bpb",
        GPT_LRS,
    ),
}


def sweep(
    log_dir: Path, width: int, parametrization: str, extra: list[str], epochs: int, metric: str, lrs: list | None
) -> dict[float, float]:
    """{lr: metric} of one real lr_transfer study (a grid over `lrs` when given, else the search file's)."""
    grid = [
        f"hydra.sweeper.params.lr='choice({','.join(repr(lr) for lr in lrs)})'",
        f"hydra.sweeper.n_trials={len(lrs)}",
    ]
    command = [
        sys.executable,
        str(ROOT / "train.py"),
        "-m",
        "hparams_search=lr_transfer",
        *extra,
        *(grid if lrs else []),
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
            losses[lr] = json.loads((job / "metrics.json").read_text())[metric]
    return dict(sorted(losses.items()))


def seeded(
    log_dir: Path, width: int, parametrization: str, lr: float, seeds: int, extra: list[str], epochs: int, metric: str
) -> list[float]:
    """`metric` of `seeds` runs (seed 0, 1, ...) with the sweep's protocol at one lr."""
    extra = [o for o in extra if not o.startswith("hydra.sweeper.")]  # Hydra's basic sweeper over the seeds
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
    return [json.loads((log_dir / "seeded" / str(s) / "metrics.json").read_text())[metric] for s in range(seeds)]


def plot(curves: dict[str, dict[int, dict[float, float]]], path: Path, run: str, metric: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(curves), figsize=(5 * len(curves), 4), sharey=True, squeeze=False)
    for axis, (parametrization, by_width) in zip(axes[0], curves.items(), strict=True):
        for width, losses in by_width.items():
            axis.plot([math.log2(lr) for lr in losses], list(losses.values()), marker="o", label=f"width {width}")
        axis.set_title(f"{parametrization} parametrisation")
        axis.set_xlabel("log2(learning rate)")
        axis.set_yscale("log")
        axis.legend()
    axes[0][0].set_ylabel(f"{metric} (best checkpoint, {run})")
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", choices=list(PROFILES), default="mlp")
    parser.add_argument("--widths", type=int, nargs="+")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--parametrizations", nargs="+", choices=PARAMETRIZATIONS, default=list(PARAMETRIZATIONS))
    parser.add_argument("--log2-lrs", type=int, nargs="+", help="the LR grid as powers of 2 (default: the profile's)")
    parser.add_argument("--output-multiplier", type=float, help="model.output_multiplier (muP's alpha_out)")
    args = parser.parse_args()
    extra, default_widths, epochs, run, metric, lrs = PROFILES[args.model]
    args.widths = args.widths or default_widths
    lrs = [2.0**k for k in args.log2_lrs] if args.log2_lrs else lrs
    variant = ""
    if args.output_multiplier is not None:  # its own runs, section and plot: the default ones stay as they are
        extra, variant = (
            [*extra, f"model.output_multiplier={args.output_multiplier:g}"],
            f"_alpha{args.output_multiplier:g}",
        )
    narrow, wide = min(args.widths), max(args.widths)
    figure = "hp_transfer.png" if args.model == "mlp" else f"hp_transfer_{args.model}{variant}.png"
    curves: dict[str, dict[int, dict[float, float]]] = {}
    grid = "2^-13 .. 2^-5" if lrs is None else f"2^{math.log2(lrs[0]):.0f} .. 2^{math.log2(lrs[-1]):.0f}"
    rows = [
        f"Learning-rate grid {grid}, AdamW, {run}, objective {metric}; widths {args.widths} "
        f"({wide // narrow}x range). Plot: bench/{figure}.",
        "",
        "| parametrisation | " + " | ".join(f"best log2(lr) at width {w}" for w in args.widths) + " | shift |",
        "|---|" + "---|" * (len(args.widths) + 1),
    ]
    transfer = []
    # runs and partial results under logs/ (kept): a stopped bench reruns only what it had not finished
    folder = ROOT / "logs" / "bench" / f"hp_transfer_{args.model}{variant}"
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / "partial.json"
    for parametrization in args.parametrizations:
        curves[parametrization] = {}
        for w in args.widths:
            found = kept(
                partial,
                f"{parametrization}/{w}",
                lambda w=w, p=parametrization: {
                    repr(lr): v for lr, v in sweep(folder / f"{p}{w}", w, p, extra, epochs, metric, lrs).items()
                },
            )
            curves[parametrization][w] = {float(lr): v for lr, v in found.items()}
        best = {w: min(losses, key=losses.get) for w, losses in curves[parametrization].items()}
        logs = [math.log2(best[w]) for w in args.widths]
        rows.append(
            f"| {parametrization} | " + " | ".join(f"{x:.0f}" for x in logs) + f" | {max(logs) - min(logs):.0f} |"
        )
        runs = {}
        for lr in {best[narrow], best[wide]}:  # one set of seeds when both widths found the same LR
            runs[lr] = kept(
                partial,
                f"{parametrization}/seeded/{lr!r}",
                lambda lr=lr, p=parametrization: seeded(
                    folder / f"seeded_{p}_{math.log2(lr):.0f}", wide, p, lr, args.seeds, extra, epochs, metric
                ),
            )
        transfer.append((parametrization, best[narrow], runs[best[narrow]], best[wide], runs[best[wide]]))
    rows += [
        "",
        f"Transfer: width {wide} trained with the LR found at width {narrow}, against the LR found at width {wide} "
        f"itself; {metric} over {args.seeds} seeds (mean +- std), and the first's excess over the second.",
        "",
        f"| parametrisation | LR from width {narrow} | {metric} | LR from width {wide} | {metric} | excess |",
        "|---|---|---|---|---|---|",
    ]
    for parametrization, lr_narrow, reused, lr_wide, direct in transfer:
        rows.append(
            f"| {parametrization} | 2^{math.log2(lr_narrow):.0f} | {statistics.mean(reused):.4f} +- "
            f"{statistics.stdev(reused):.4f} | 2^{math.log2(lr_wide):.0f} | {statistics.mean(direct):.4f} +- "
            f"{statistics.stdev(direct):.4f} | {statistics.mean(reused) / statistics.mean(direct) - 1:+.2%} |"
        )
    rows += ["", f"{metric} per LR (rows) and width (columns):", ""]
    for parametrization, by_width in curves.items():
        rows += [f"{parametrization}:", "", "| log2(lr) | " + " | ".join(str(w) for w in args.widths) + " |"]
        rows.append("|---|" + "---|" * len(args.widths))
        for lr in by_width[narrow]:
            rows.append(f"| {math.log2(lr):.0f} | " + " | ".join(f"{by_width[w][lr]:.4f}" for w in args.widths) + " |")
        rows.append("")
    plot(curves, Path(__file__).resolve().parent / figure, run, metric)
    title = "Hyperparameter transfer" + (" (GPT)" if args.model == "gpt" else "")
    if args.output_multiplier is not None:
        title = f"Hyperparameter transfer (GPT, output multiplier {args.output_multiplier:g})"
    publish(title, " ".join(["python bench/hp_transfer.py", *sys.argv[1:]]), rows)


if __name__ == "__main__":
    main()
