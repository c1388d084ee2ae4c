"""Fitted scaling laws and their held-out check (issue 30).

    python bench/scaling_laws.py [--seeds 2] [--lrs 5]

1. The fitting grid: `python train.py -m hparams_search=scaling` (GPT widths 32, 64, 128 x 6 LRs x 2 seeds on
   data=stdlib, each trial a WSD run with cooldown branches at 125, 250 and 500 steps), its wall time measured.
2. `python -m hyperlab.scale` on it, with a target 4x the largest grid model's parameters (width 264) trained 2x
   the longest budget (1000 steps, 2.05M tokens): the predicted LR and its experiment file.
3. The held-out check: that target trained at the predicted LR and at `--lrs` LRs a factor 2 apart around it
   (powers of 2), `--seeds` seeds each: the predicted LR's val/bpb against the brute-force best.
Runs and partial results stay under `--folder` (default logs/bench/scaling; a stopped bench reruns only what it
had not finished); writes the "Scaling laws" section of bench/results.md and bench/scaling_laws.png. `--grid`
passes overrides to the grid (a smoke test: smaller budgets), `--target-width` / `--target-steps` set the target.
"""

import argparse
import json
import math
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from report import kept, publish

ROOT = Path(__file__).resolve().parents[1]
ARGS = argparse.Namespace()  # the command line, read by the steps below


def run(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, *command], cwd=ROOT, check=True, capture_output=True)
    return time.perf_counter() - start


def grid() -> float:
    """The fitting grid's wall seconds (the study sweeper resumes a stopped grid: only its missing trials run)."""
    return run(["train.py", "-m", "hparams_search=scaling", f"paths.log_dir={ARGS.folder}", *ARGS.grid])


def predict() -> dict:
    from hyperlab.search import scaling_report

    study = ARGS.folder / "train" / "studies" / "scaling"
    tokens = ARGS.target_steps * 32 * 64
    report = scaling_report.main([str(study), "--width", str(ARGS.target_width), "--tokens", str(tokens)])
    shutil.copy(study / "scaling.png", Path(__file__).resolve().parent / "scaling_laws.png")
    laws = report["laws"]
    return {
        "target": report["target"],
        "lines": report["lines"],
        "largest_grid_N": max(r["N"] for r in report["rows"]),
        "lr_ND": {"a": laws["lr_ND"].a, **laws["lr_ND"].exponents, "r2": laws["lr_ND"].r2},
        "intervals": laws["lr_ND"].intervals,
    }


def held_out(lr: float, seeds: int) -> list[float]:
    """val/bpb of the target run at `lr`, one per seed (the experiment file the report wrote)."""
    conf = ARGS.folder / "target_conf"
    (conf / "experiment").mkdir(parents=True, exist_ok=True)
    target = ARGS.folder / "train" / "studies" / "scaling" / "target" / "experiment.yaml"
    shutil.copy(target, conf / "experiment" / "t.yaml")
    out = ARGS.folder / "held_out" / f"lr_{lr:.6g}"
    seed_list = ",".join(str(s) for s in range(seeds))
    common = [f"hydra.searchpath=[file://{conf}]", "experiment=t", "test=false", f"paths.log_dir={ARGS.folder}"]
    run(["train.py", "-m", *common, f"lr={lr!r}", f"seed={seed_list}", f"hydra.sweep.dir={out}"])
    return [json.loads((out / str(s) / "metrics.json").read_text())["val/bpb"] for s in range(seeds)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument(
        "--lrs", type=int, default=4, help="LRs a factor 2 apart around the prediction, swept at the target"
    )
    parser.add_argument("--folder", type=Path, default=ROOT / "logs" / "bench" / "scaling")
    parser.add_argument("--grid", nargs="*", default=[], help="overrides for the grid (a smoke test)")
    parser.add_argument("--target-width", type=int, default=264, help="4.0x the parameters of width 128")
    parser.add_argument("--target-steps", type=int, default=1000, help="2x the grid's longest budget")
    args = parser.parse_args(namespace=ARGS)
    args.folder.mkdir(parents=True, exist_ok=True)
    partial = args.folder / "partial.json"  # kept results: a stopped bench resumes
    grid_s = kept(partial, "grid_s", grid)
    prediction = kept(partial, "prediction", predict)
    lr = prediction["target"]["lr"]
    n = round(math.log2(lr))  # a factor-2 grid centred on the prediction: it may lie beyond the fitting grid
    nearest = [2.0 ** (n + k) for k in range(-(args.lrs // 2), args.lrs - args.lrs // 2)]
    sweep = {g: kept(partial, f"held_out/{g!r}", lambda g=g: held_out(g, args.seeds)) for g in nearest}
    predicted = kept(partial, f"held_out/predicted/{lr!r}", lambda: held_out(lr, args.seeds))
    best_lr = min(sweep, key=lambda g: statistics.mean(sweep[g]))
    best, mine = statistics.mean(sweep[best_lr]), statistics.mean(predicted)
    target = prediction["target"]
    rows = [
        "Fitting grid: `python train.py -m hparams_search=scaling` (GPT depth 2, widths 32/64/128 x LRs 2^-10..2^-5"
        " x seeds 0-1, WSD with cooldown branches at 125/250/500 steps of 2048 byte tokens):"
        f" {grid_s / 60:.1f} min wall "
        "(target: <= 60 min on this machine).",
        "",
        "```",
        *prediction["lines"],
        "```",
        "",
        f"Held-out check: width {target['width']} (N={target['N']:.4g}, "
        f"{target['N'] / prediction['largest_grid_N']:.2f}x the grid's largest), {target['steps']} steps "
        f"(D={target['D']:.4g}, 2x the longest budget), val/bpb over {args.seeds} seeds (mean +- std):",
        "",
        "| LR | log2 | val/bpb |",
        "|---|---|---|",
    ]
    for g, values in [*sweep.items(), ("predicted", predicted)]:
        value = lr if g == "predicted" else g
        label = f"{value:.4g}" + (" (predicted)" if g == "predicted" else "")
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        rows.append(f"| {label} | {math.log2(value):.2f} | {statistics.mean(values):.4f} +- {spread:.4f} |")
    verdict = "met" if mine <= best * 1.01 else "missed"
    rows += [
        "",
        f"The predicted LR's val/bpb {mine:.4f} against the brute-force best {best:.4f} (LR {best_lr:.4g}): "
        f"{mine / best - 1:+.2%} (target: within 1%: {verdict}). Plot: bench/scaling_laws.png.",
    ]
    import torch

    title = "Scaling laws" + (" (GPU)" if torch.cuda.is_available() else "")  # one section per kind of machine
    publish(title, f"python bench/scaling_laws.py --seeds {args.seeds} --lrs {args.lrs}", rows)
    shutil.copy(Path(__file__).resolve().parent / "results.md", args.folder / "results.md")


if __name__ == "__main__":
    main()
