"""Model selection over a sweep: `python -m hyperlab.select SWEEP_DIR [--metric val/acc] [--mode max]`.

Reads every job of a sweep through the run-output contract only (`<job>/metrics.json` and
`<job>/.hydra/overrides.yaml`) and writes into SWEEP_DIR:
- `leaderboard.csv` (also printed as a rich table): metric, its std over folds when cross-validated, parameters,
  forward FLOPs per sample, train time, peak memory, overrides; best first;
- `pareto.png`: the metric against FLOPs per sample, the Pareto-optimal jobs highlighted;
- `importances.csv`: Optuna's parameter importances when the sweep is a study (`study.journal`);
- `best_experiment.yaml`: the winning job as a ready-to-run `conf/experiment/` file.
"""

import argparse
import csv
import json
from pathlib import Path

import yaml

COLUMNS = ["job", "metric", "metric_std", "model/params", "model/flops", "time/train_s", "memory/peak_mb"]
NOT_RECIPE = ("trial.", "hparams_search=", "paths.", "hydra.", "+hparams_search")


def read_jobs(sweep_dir: Path, metric: str) -> list[dict]:
    """One row per job that wrote metrics.json and logged `metric`."""
    rows = []
    for metrics_path in sorted(sweep_dir.glob("*/metrics.json")):
        job = metrics_path.parent
        metrics = json.loads(metrics_path.read_text())
        if metrics.get(metric) is None:
            continue
        overrides_path = job / ".hydra" / "overrides.yaml"
        overrides = yaml.safe_load(overrides_path.read_text()) if overrides_path.is_file() else []
        rows.append(
            {
                "job": job.name,
                "metric": metrics[metric],
                "metric_std": metrics.get(f"{metric}_std"),
                **{key: metrics.get(key) for key in COLUMNS[3:]},
                "overrides": [o for o in overrides if not o.startswith(NOT_RECIPE)],
            }
        )
    return rows


def pareto_front(rows: list[dict], maximize: bool, cost: str = "model/flops") -> list[dict]:
    """Rows no other row beats on both the metric and the cost (ties on both are kept)."""

    def better_or_equal(a, b):
        metric_ok = a["metric"] >= b["metric"] if maximize else a["metric"] <= b["metric"]
        return metric_ok and a[cost] <= b[cost]

    return [
        r
        for r in rows
        if not any(better_or_equal(o, r) and (o["metric"], o[cost]) != (r["metric"], r[cost]) for o in rows)
    ]


def write_leaderboard(rows: list[dict], path: Path) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=[*COLUMNS, "overrides"])
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "overrides": " ".join(row["overrides"])})


def print_leaderboard(rows: list[dict], metric: str, front: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{len(rows)} jobs by {metric} (* = Pareto-optimal in {metric} vs FLOPs)")
    for column in ["job", metric, "std", "params", "FLOPs/sample", "train s", "peak MB", "overrides"]:
        table.add_column(column)
    for row in rows:
        std = "" if row["metric_std"] is None else f"{row['metric_std']:.4f}"
        table.add_row(
            row["job"] + (" *" if row in front else ""),
            f"{row['metric']:.4f}",
            std,
            str(row["model/params"]),
            str(row["model/flops"]),
            str(row["time/train_s"]),
            str(row["memory/peak_mb"]),
            " ".join(row["overrides"]),
        )
    Console().print(table)


def plot_pareto(rows: list[dict], front: list[dict], metric: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.scatter([r["model/flops"] for r in rows], [r["metric"] for r in rows], c="lightgrey", label="dominated")
    front = sorted(front, key=lambda r: r["model/flops"])
    ax.plot([r["model/flops"] for r in front], [r["metric"] for r in front], "o-", c="tab:blue", label="Pareto front")
    for r in front:
        ax.annotate(r["job"], (r["model/flops"], r["metric"]), textcoords="offset points", xytext=(4, 4))
    ax.set(xscale="log", xlabel="forward FLOPs per sample", ylabel=metric, title="metric vs compute")
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # log-axis minor labels overlap
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_importances(sweep_dir: Path, path: Path) -> dict | None:
    journal = sweep_dir / "study.journal"
    if not journal.is_file():
        return None
    import optuna

    from hyperlab.study import open_storage

    storage = open_storage(str(journal))
    (summary,) = optuna.get_all_study_summaries(storage)
    study = optuna.load_study(study_name=summary.study_name, storage=storage)
    try:
        importances = optuna.importance.get_param_importances(study)
    except (ValueError, RuntimeError):  # too few complete trials, or a single distinct value
        return None
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([("param", "importance"), *importances.items()])
    return importances


def experiment_yaml(row: dict, sweep_dir: Path, metric: str, conf_dir: Path) -> str:
    """The winning job's overrides as a `conf/experiment/` file: group choices become defaults overrides."""
    defaults, values = [], {}
    for override in row["overrides"]:
        key, _, value = override.lstrip("+").partition("=")
        if "." not in key and (conf_dir / key).is_dir():
            defaults.append({f"override /{key}": value})
        else:
            node = values
            *parents, leaf = key.split(".")
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = yaml.safe_load(value)
    header = (
        f"# @package _global_\n# Winner of the sweep {sweep_dir} (job {row['job']}): {metric} = {row['metric']:.4f}\n"
        f"#   copy to conf/experiment/NAME.yaml, then: python train.py experiment=NAME\n"
        "# Settings of the hparams_search config itself (e.g. its trainer.max_epochs) are not repeated here.\n"
    )
    body = yaml.safe_dump({"defaults": defaults, **values} if defaults else values, sort_keys=False)
    return header + body


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("sweep_dir", type=Path)
    parser.add_argument("--metric", default=None, help="a metrics.json key; default: the sweep's optimized_metric")
    parser.add_argument("--mode", choices=["max", "min"], default="max")
    args = parser.parse_args(argv)
    sweep_dir = args.sweep_dir
    multirun = sweep_dir / "multirun.yaml"
    metric = (
        args.metric
        or (yaml.safe_load(multirun.read_text()).get("optimized_metric") if multirun.is_file() else None)
        or "val/acc"
    )
    rows = read_jobs(sweep_dir, metric)
    if not rows:
        raise SystemExit(f"error: no job under {sweep_dir} has a metrics.json with {metric!r}")
    rows.sort(key=lambda r: r["metric"], reverse=args.mode == "max")
    front = pareto_front(rows, maximize=args.mode == "max")
    write_leaderboard(rows, sweep_dir / "leaderboard.csv")
    print_leaderboard(rows, metric, front)
    plot_pareto(rows, front, metric, sweep_dir / "pareto.png")
    write_importances(sweep_dir, sweep_dir / "importances.csv")
    conf_dir = Path(__file__).resolve().parents[2] / "conf"
    (sweep_dir / "best_experiment.yaml").write_text(experiment_yaml(rows[0], sweep_dir, metric, conf_dir))
    return rows


if __name__ == "__main__":
    main()
