"""`python -m hyperlab.scale SWEEP_DIR [--width W | --params N] [--tokens D | --compute C] [--name NAME]`: the
scaling report of a grid of small runs (`-m hparams_search=scaling`), beside the model-selection report.

It reads every job's metrics.json (a job with `scheduler.budgets` gives one point per budget: its model size N
= `model/params`, its tokens D = `data/tokens_trained`, its learning rate and its loss), finds the best LR of
each (N, D) between the grid's points (scaling_laws.grid_optimum), fits it as a power law of N and D and of
C = 6 N D with bootstrap intervals, fits L(N, D), and prints and plots the fits against the points
(`scaling.png`). For a target (a width or N, and D tokens or a compute budget C) it prints the predicted LR and
loss and writes the target run as an experiment file: `SWEEP_DIR/target/experiment.yaml`, and with `--name`
also `conf/experiment/NAME.yaml`, so `python train.py experiment=NAME` trains it.
The batch size is the grid's: this report does not fit it (the grid holds one).
"""

import argparse
import json
import math
from collections import defaultdict
from pathlib import Path

import numpy as np
import yaml
from omegaconf import OmegaConf

from hyperlab.config.cli import CONF_DIR
from hyperlab.search import refit as refitting
from hyperlab.search.scaling_laws import LossLaw, PowerLaw, bootstrap_power_law, fit_loss_law, grid_optimum
from hyperlab.search.select import settings

EXPERIMENTS = CONF_DIR / "experiment"  # where --name writes the target run


def read_points(sweep_dir: Path, metric: str) -> list[dict]:
    """One point per job, or per budget of a job that ran cooldown branches: N, D, lr, width and `metric`."""
    points = []
    for metrics_path in sorted(sweep_dir.glob("*/metrics.json")):
        job, metrics = metrics_path.parent, json.loads(metrics_path.read_text())
        config = yaml.safe_load((job / ".hydra" / "config.yaml").read_text())
        for figures in (metrics.get("budgets") or {"": metrics}).values():
            if figures.get(metric) is None:
                continue
            steps = figures["trainer/global_step"]
            tokens = figures.get("data/tokens_trained") or steps * config["batch_size"]  # samples, for other data
            points.append(
                {
                    "job": job.name,
                    "width": config["model"].get("width"),
                    "lr": config["lr"],
                    "N": figures["model/params"],
                    "D": tokens,
                    "steps": steps,
                    "loss": figures[metric],
                }
            )
    return points


def optima(points: list[dict]) -> list[dict]:
    """Per (N, D): the best LR between grid points, the loss there (the parabola's), the best measured one, and
    whether the best is at the grid's edge."""
    groups = defaultdict(list)
    for point in points:
        groups[(point["N"], point["D"])].append(point)
    rows = []
    for (N, D), group in sorted(groups.items()):
        curve = seed_means(group)
        lr, loss, at_edge = grid_optimum(list(curve), list(curve.values()))
        best_lr = min(curve, key=curve.get)
        best = next(p for p in group if p["lr"] == best_lr)
        rows.append({"N": N, "D": D, "width": best["width"], "steps": best["steps"], "lr": lr, "lr_grid": best_lr})
        rows[-1]["job"] = best["job"]
        rows[-1].update({"loss": loss, "loss_grid": curve[best_lr], "at_edge": at_edge, "runs": len(group)})
    return rows


def seed_means(group: list[dict]) -> dict[float, float]:
    """The loss per learning rate, averaged over the runs that share it (seeds): at these sizes two seeds differ
    by more than neighbouring grid points, so the optimum is read from the mean curve, not from single runs."""
    runs = defaultdict(list)
    for point in group:
        runs[point["lr"]].append(point["loss"])
    return {lr: float(np.mean(losses)) for lr, losses in runs.items()}


def fit(rows: list[dict], samples: int) -> dict:
    """The best LR's laws in (N, D) and in C, and L(N, D) when there are points enough for its 5 parameters."""
    N, D = np.array([r["N"] for r in rows], float), np.array([r["D"] for r in rows], float)
    lr, loss = np.array([r["lr"] for r in rows]), np.array([r["loss"] for r in rows])
    laws = {
        "lr_ND": bootstrap_power_law(lr, samples=samples, N=N, D=D),
        "lr_C": bootstrap_power_law(lr, samples=samples, C=6 * N * D),
    }
    laws["loss"] = fit_loss_law(loss, N, D) if len(rows) >= 6 else None
    return laws


def enough_points(rows: list[dict], sweep_dir: Path) -> None:
    sizes, budgets = {r["N"] for r in rows}, {r["D"] for r in rows}
    if len(rows) < 4 or len(sizes) < 2 or len(budgets) < 2:
        raise SystemExit(
            f"error: too few points to fit: the best LR as a power law of N and D needs at least 4 (N, D) points "
            f"with 2+ sizes and 2+ token budgets; {sweep_dir} has {len(rows)} ({len(sizes)} sizes, "
            f"{len(budgets)} budgets)"
        )


def params_of_width(rows: list[dict]) -> np.poly1d:
    """N as a polynomial of the width, through the grid's sizes: exact for a transformer of fixed depth, whose
    matrices grow as width^2 and its embeddings as width (degree 2 from three widths on)."""
    widths = sorted({(r["width"], r["N"]) for r in rows})
    degree = min(2, len(widths) - 1)
    return np.poly1d(np.polyfit([w for w, _ in widths], [n for _, n in widths], degree))


def target_size(rows: list[dict], width: int | None, params: float | None, multiple: int) -> tuple[int, float]:
    """(width, N) of the target: the width given, or the smallest multiple of `multiple` with at least `params`."""
    N_of = params_of_width(rows)
    if width is None:
        width = multiple
        while N_of(width) < params:
            width += multiple
    return width, float(N_of(width))


def law_line(name: str, law: PowerLaw) -> str:
    terms = []
    for variable, exponent in law.exponents.items():
        low, high = law.intervals.get(variable, (math.nan, math.nan))
        terms.append(f"{variable}^{exponent:+.3f} [{low:+.3f}, {high:+.3f}]")
    quality = "poor: the points are not this power law" if law.poor else "good"
    return f"  {name} = {law.a:.4g} * {' * '.join(terms)}   (R^2 of log {law.r2:.3f}: {quality}; 95% bootstrap)"


def loss_line(law: LossLaw | None) -> str:
    if law is None:
        return "  L(N, D): fewer than 6 (N, D) points: not fitted"
    quality = "poor" if law.poor else "good"
    return (
        f"  L(N, D) = {law.E:.4g} + {law.A:.4g} / N^{law.alpha:.3f} + {law.B:.4g} / D^{law.beta:.3f}"
        f"   (R^2 of log {law.r2:.3f}: {quality})"
    )


def table(rows: list[dict], metric: str) -> list[str]:
    head = f"  {'N':>10} {'D':>10} {'width':>6} {'runs':>4} {'best lr (grid)':>14} {metric:>10} {'best lr':>10}"
    lines = [f"{head} {'at it':>10}"]
    for r in rows:
        edge = "  (grid edge)" if r["at_edge"] else ""
        lines.append(
            f"  {r['N']:>10.4g} {r['D']:>10.4g} {r['width']:>6} {r['runs']:>4} {r['lr_grid']:>14.4g} "
            f"{r['loss_grid']:>10.4f} {r['lr']:>10.4g} {r['loss']:>10.4f}{edge}"
        )
    return lines


def plot(rows: list[dict], laws: dict, path: Path, metric: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    C = np.array([6 * r["N"] * r["D"] for r in rows])
    for N in sorted({r["N"] for r in rows}):
        mine = [r for r in rows if r["N"] == N]
        left.scatter([6 * r["N"] * r["D"] for r in mine], [r["lr"] for r in mine], label=f"N={N:.3g}")
        D = np.array([r["D"] for r in mine])
        right.scatter(D, [r["loss"] for r in mine], label=f"N={N:.3g}")
        if laws["loss"] is not None:
            grid = np.geomspace(D.min(), D.max(), 50)
            right.plot(grid, laws["loss"](N, grid))
    line = np.geomspace(C.min(), C.max(), 50)
    left.plot(line, laws["lr_C"].a * line ** laws["lr_C"].exponents["C"], "k--", label="fit")
    left.set(xscale="log", yscale="log", xlabel="C = 6 N D", ylabel="best learning rate", title="best LR vs compute")
    right.set(xscale="log", xlabel="D (tokens)", ylabel=metric, title="loss vs tokens, L(N, D) fitted")
    left.legend()
    right.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def write_target(sweep_dir: Path, rows: list[dict], width: int, lr: float, steps: int, header: str, name: str | None):
    """The target run as an experiment file: the grid's recipe (its largest model's job) at the target's width,
    predicted LR and length, one WSD run (no budgets), tested once."""
    largest = max(rows, key=lambda r: r["N"])
    searchpath = settings(sweep_dir).get("searchpath", [])
    job_cfg = refitting.compose(refitting.recipe(sweep_dir / largest["job"]), searchpath)
    changes = {"lr": float(f"{lr:.4g}"), "model.width": width, "trainer.max_steps": steps, "trainer.max_epochs": -1}
    changes.update({"test": True, "scheduler.budgets": None})
    if job_cfg.callbacks.get("model_checkpoint") is None:  # the grid kept none; the run trained once keeps its own
        default = OmegaConf.load(CONF_DIR / "callbacks" / "model_checkpoint.yaml").model_checkpoint
        changes["callbacks.model_checkpoint"] = OmegaConf.to_container(default)
    node = refitting.with_changes(refitting.experiment(job_cfg, searchpath), changes)
    paths = [sweep_dir / "target" / "experiment.yaml"] + ([EXPERIMENTS / f"{name}.yaml"] if name else [])
    for path in paths:
        refitting.write_experiment(path, node, header)
    return paths


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("sweep_dir", type=Path)
    parser.add_argument("--metric", default=None, help="a metrics.json key; default: the sweep's optimized_metric")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--width", type=int, help="the target's model.width")
    size.add_argument("--params", type=float, help="the target's parameters N (the smallest width with as many)")
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--tokens", type=float, help="the target's training tokens D")
    length.add_argument("--compute", type=float, help="a compute budget C = 6 N D: N and D from L(N, D)")
    parser.add_argument("--name", help="also write conf/experiment/NAME.yaml")
    parser.add_argument("--bootstrap", type=int, default=1000, help="refits for the exponents' intervals")
    args = parser.parse_args(argv)
    metric = args.metric or settings(args.sweep_dir).get("metric") or "val/loss"
    rows = optima(read_points(args.sweep_dir, metric))
    enough_points(rows, args.sweep_dir)
    laws = fit(rows, args.bootstrap)
    lines = [f"Scaling laws of {args.sweep_dir}: {len(rows)} (N, D) points, {metric}", *table(rows, metric)]
    lines += ["best learning rate:", law_line("eta*", laws["lr_ND"]), law_line("eta*", laws["lr_C"])]
    lines += ["loss:", loss_line(laws["loss"])]
    edges = sum(r["at_edge"] for r in rows)
    if edges:
        lines.append(f"warning: {edges} of {len(rows)} best LRs lie at the grid's edge: widen the LR grid there")
    plot(rows, laws, args.sweep_dir / "scaling.png", metric)
    lines.append(f"plot: {args.sweep_dir / 'scaling.png'}")
    report = {"rows": rows, "laws": laws, "lines": lines}
    if args.tokens or args.compute:
        report["target"] = predict(args, rows, laws, lines)
    print("\n".join(lines))
    return report


def predict(args, rows: list[dict], laws: dict, lines: list[str]) -> dict:
    """The target's size, tokens, LR and loss; its experiment file written."""
    multiple = math.gcd(*{r["width"] for r in rows})  # widths the grid's heads divide
    if args.compute:
        if laws["loss"] is None:
            raise SystemExit("error: --compute needs L(N, D), which needs 6 or more (N, D) points")
        params, tokens = laws["loss"].compute_optimal(args.compute)
        width, N = target_size(rows, None, params, multiple)
    else:
        width, N = target_size(rows, args.width, args.params or 0.0, multiple)
        tokens = args.tokens
    per_step = rows[0]["D"] / rows[0]["steps"]
    epoch = _epoch_steps(args.sweep_dir, rows)
    steps = max(epoch, math.ceil(tokens / per_step / epoch) * epoch)  # whole epochs: the run ends validated
    lr = laws["lr_ND"](N=N, D=steps * per_step)
    loss = float(laws["loss"](N, steps * per_step)) if laws["loss"] is not None else None
    header = (
        f"# Predicted by python -m hyperlab.scale {args.sweep_dir}: width {width} (N={N:.4g}), {steps} steps "
        f"(D={steps * per_step:.4g} tokens), lr {lr:.4g} from eta* = a N^alpha_N D^alpha_D\n"
        f"# python train.py experiment={args.name or 'NAME'}\n"
    )
    paths = write_target(args.sweep_dir, rows, width, lr, steps, header, args.name)
    predicted = "not fitted" if loss is None else f"{loss:.4f}"
    lines.append(f"target: width {width} (N={N:.4g}), {steps} steps (D={steps * per_step:.4g} tokens)")
    lines.append(f"  predicted lr {lr:.4g}, batch size (the grid's, not fitted), loss {predicted}")
    lines += [f"  written: {path}" for path in paths]
    return {"width": width, "N": N, "steps": steps, "D": steps * per_step, "lr": lr, "loss": loss}


def _epoch_steps(sweep_dir: Path, rows: list[dict]) -> int:
    """Optimizer steps per epoch of the grid's runs when the data fixes them (token data), else 1."""
    config = yaml.safe_load((sweep_dir / rows[0]["job"] / ".hydra" / "config.yaml").read_text())
    batches = (config.get("data") or {}).get("batches_per_epoch") or 1
    return max(1, batches // ((config.get("trainer") or {}).get("accumulate_grad_batches") or 1))
