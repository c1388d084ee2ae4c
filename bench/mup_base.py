"""muP's base-width search on the GPT, then its check at 8x the width (issue 30).

    python bench/mup_base.py [--log2-lrs -6 -5 -4] [--init-stds 0.02 0.04 0.08] [--embedding-lr 1 0.25 0.0625]

1. `python train.py -m hparams_search=mup_base` at width 32 (= model.base_width) with alpha_out 8 (found by the
   same search in "Hyperparameter transfer (GPT, output multiplier 8)"), the grid narrowed to the learning rate x
   the init scale (model.init_std, muP's sigma) x the embeddings' LR multiplier (model.embedding_lr_multiplier):
   the two causes of muP's gap to the standard network that bench/mup_probes.py found at width 256.
2. Width 256 (8x): muP with the best of (1), unchanged, against the standard network at its own best LR at that
   width (2^-9, "Hyperparameter transfer (GPT)"), `--seeds` seeds each, in the same run; and muP at the best LR's
   two neighbours (seed 0): the LR found at width 32 is still the best at width 256, or it is not.
The protocol is bench/hp_transfer.py's (500 steps, 1.02M byte tokens of data=stdlib, val/bpb). Runs and partial
results stay under logs/bench/mup_base (a stopped bench reruns only what it had not finished); writes the "muP
base-width search (GPT)" section of bench/results.md.
"""

import argparse
import json
import math
import statistics
import subprocess
import sys
from pathlib import Path

from hp_transfer import PROFILES
from report import kept, publish

ROOT = Path(__file__).resolve().parents[1]
PROTOCOL = [o for o in PROFILES["gpt"][0] if not o.startswith("hydra.")]
ALPHA, STANDARD_LOG2_LR, WIDE = 8, -9, 256
KNOBS = ("lr", "model.init_std", "model.embedding_lr_multiplier")


def train(command: list[str]) -> None:
    subprocess.run([sys.executable, str(ROOT / "train.py"), *command], cwd=ROOT, check=True, capture_output=True)


def base_search(folder: Path, lrs: list[float], stds: list[float], multipliers: list[float]) -> list[dict]:
    """Every grid point of the base-width study: its three knobs and val/bpb. The narrowed grid is a search file
    beside the runs (the sweeper's dotted parameter names cannot be overridden from the command line)."""
    search = folder / "conf" / "hparams_search" / "mup_base_narrowed.yaml"
    search.parent.mkdir(parents=True, exist_ok=True)
    grid = {"lr": lrs, "model.output_multiplier": [ALPHA], "model.init_std": stds}
    grid["model.embedding_lr_multiplier"] = multipliers
    params = "".join(f"      {key}: choice({', '.join(map(repr, values))})\n" for key, values in grid.items())
    search.write_text(
        "# @package _global_\ndefaults:\n  - mup_base\n\nhydra:\n  sweeper:\n"
        f"    n_trials: {len(lrs) * len(stds) * len(multipliers)}\n    objectives: [val/bpb]\n    params:\n{params}"
    )
    train(
        [
            "-m",
            "hparams_search=mup_base_narrowed",
            f"hydra.searchpath=[file://{folder / 'conf'}]",
            *PROTOCOL,
            "model.parametrization=mup",
            "model.width=32",
            "trainer.max_epochs=5",
            "callbacks.rich_progress_bar=null",
            f"paths.log_dir={folder}",
        ]
    )
    points = []
    for job in sorted((folder / "train" / "studies" / "mup_base_w32").glob("*/metrics.json")):
        overrides = dict(
            line[2:].split("=", 1) for line in (job.parent / ".hydra" / "overrides.yaml").read_text().splitlines()
        )
        points.append(
            {key: float(overrides[key]) for key in KNOBS} | {"val/bpb": json.loads(job.read_text())["val/bpb"]}
        )
    return points


def at_width(folder: Path, name: str, knobs: dict, seeds: int) -> list[float]:
    """val/bpb of `seeds` runs (seed 0, 1, ...) at width 256 with these knobs."""
    out = folder / name
    train(
        [
            "-m",
            *PROTOCOL,
            f"model.width={WIDE}",
            *(f"{key}={value!r}" for key, value in knobs.items()),
            f"seed={','.join(str(s) for s in range(seeds))}",
            "trainer.max_epochs=5",
            "callbacks.early_stopping=null",
            "callbacks.rich_progress_bar=null",
            "test=false",
            f"paths.log_dir={folder}",
            f"hydra.sweep.dir={out}",
        ]
    )
    return [json.loads((out / str(s) / "metrics.json").read_text())["val/bpb"] for s in range(seeds)]


def summary(values: list[float]) -> str:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.4f} +- {spread:.4f}" if len(values) > 1 else f"{values[0]:.4f}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--log2-lrs", type=int, nargs="+", default=[-6, -5, -4])
    parser.add_argument("--init-stds", type=float, nargs="+", default=[0.02, 0.04, 0.08])
    parser.add_argument("--embedding-lr", type=float, nargs="+", default=[1.0, 0.25, 0.0625])
    parser.add_argument("--seeds", type=int, default=2)
    args = parser.parse_args()
    folder = ROOT / "logs" / "bench" / "mup_base"
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / "partial.json"
    lrs = [2.0**k for k in args.log2_lrs]
    points = kept(partial, "base", lambda: base_search(folder / "base", lrs, args.init_stds, args.embedding_lr))
    best = min(points, key=lambda p: p["val/bpb"])
    mup = {"model.parametrization": "mup", "model.output_multiplier": ALPHA} | {k: best[k] for k in KNOBS}
    tuned = kept(partial, "wide/mup", lambda: at_width(folder, "wide_mup", mup, args.seeds))
    standard = {"model.parametrization": "standard", "lr": 2.0**STANDARD_LOG2_LR}
    reference = kept(partial, "wide/standard", lambda: at_width(folder, "wide_standard", standard, args.seeds))
    neighbours = {
        factor: kept(
            partial,
            f"wide/mup_lr_x{factor}",
            lambda f=factor: at_width(folder, f"wide_mup_lr_x{f}", mup | {"lr": best["lr"] * f}, 1),
        )
        for factor in (0.5, 2.0)
    }
    publish(
        "muP base-width search (GPT)",
        " ".join(["python bench/mup_base.py", *sys.argv[1:]]),
        rows(points, best, tuned, reference, neighbours, args.seeds),
    )


def rows(points, best, tuned, reference, neighbours, seeds) -> list[str]:
    table = [
        f"1. Base width 32 (`hparams_search=mup_base`, alpha_out {ALPHA}), 500 steps (1.02M byte tokens) of"
        " data=stdlib, seed 42, val/bpb; rows init_std x embedding LR multiplier, columns log2(lr):",
        "",
    ]
    lrs = sorted({p["lr"] for p in points})
    table += [
        "| init_std | embedding LR x | " + " | ".join(f"2^{math.log2(lr):.0f}" for lr in lrs) + " |",
        "|---|---|" + "---|" * len(lrs),
    ]
    for std in sorted({p["model.init_std"] for p in points}):
        for multiplier in sorted({p["model.embedding_lr_multiplier"] for p in points}, reverse=True):
            cells = [
                next(
                    (
                        f"{p['val/bpb']:.4f}"
                        for p in points
                        if (p["lr"], p["model.init_std"], p["model.embedding_lr_multiplier"]) == (lr, std, multiplier)
                    ),
                    "",
                )
                for lr in lrs
            ]
            table.append(f"| {std:g} | {multiplier:g} | " + " | ".join(cells) + " |")
    excess = statistics.mean(tuned) / statistics.mean(reference) - 1
    table += [
        "",
        f"Best at width 32: lr {best['lr']:.4g}, init_std {best['model.init_std']:g}, embedding LR x "
        f"{best['model.embedding_lr_multiplier']:g}: {best['val/bpb']:.4f}.",
        "",
        f"2. Width {WIDE} (8x), val/bpb over seeds 0-{seeds - 1} (mean +- std), in the same run:",
        "",
        "| network | val/bpb |",
        "|---|---|",
        f"| muP with the width-32 values | {summary(tuned)} |",
        f"| standard at its own best LR at width {WIDE} (2^{STANDARD_LOG2_LR}) | {summary(reference)} |",
        *(f"| muP, lr x {factor:g} (seed 0) | {summary(values)} |" for factor, values in neighbours.items()),
        "",
        f"muP with everything tuned at width 32 against the standard network tuned at width {WIDE}: {excess:+.2%}.",
    ]
    return table


if __name__ == "__main__":
    main()
