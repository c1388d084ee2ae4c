"""Model selection over a sweep: `python -m hyperlab.select SWEEP_DIR [--rule one_se] [--refit missing]`.

Reads every job of a sweep through the run-output contract (`<job>/metrics.json`, `<job>/.hydra/overrides.yaml`)
and, for a study, its trials' states and reports (`study.journal`), then:
- ranks the complete trials by the objective; with cross-validated trials (`data.num_folds`), mean +- standard
  error over folds;
- picks the winner by a stated rule. `one_se` (the one-standard-error rule, Hastie, Tibshirani & Friedman, ESL
  7.10): among the trials whose mean is within one standard error of the best mean, the cheapest by `--cost`
  (forward FLOPs per sample by default); a difference smaller than the noise of the estimate is no reason to pay
  for a bigger model, and the best of many noisy means is biased upwards (the winner's curse). `best`: the best
  mean;
- writes into SWEEP_DIR: `leaderboard.csv` (every trial, complete, pruned and failed), `selection.png` (metric
  +- SE against cost, the optimisation history, parameter importances), `importances.csv`, and
  `best_experiment.yaml` (the winner as it was scored, a `conf/experiment/` file);
- with `--refit`, refits the winner on train + val and tests it once (hyperlab.search.refit): `SWEEP_DIR/selected/`;
- prints an 80-column report.
"""

import argparse
import csv
import json
import math
import warnings
from pathlib import Path

import yaml

from hyperlab import runs
from hyperlab.config.sweep_rules import SELECTION_RULES as RULES
from hyperlab.search import compete as competing
from hyperlab.search import nested as nested_cv
from hyperlab.search import refit as refitting

COLUMNS = [
    "job",
    "state",
    "metric",
    "metric_se",
    "metric_std",
    "folds",
    "model",
    "model/params",
    "model/flops",
    "time/train_s",
    "memory/peak_mb",
    "interpret/features_90",
    "trainer/epochs",
    "trainer/epoch",
    "test_metric",  # the baselines' (hyperlab.search.baselines)
]
FROM_METRICS = COLUMNS[7 : COLUMNS.index("test_metric")]  # what a job's metrics.json gives its row as it is


# --- reading a sweep -------------------------------------------------------------------------------------------


def read_jobs(sweep_dir: Path, metric: str) -> list[dict]:
    """One row per job that wrote metrics.json and logged `metric` (state complete)."""
    rows = []
    for metrics_path in sorted(sweep_dir.glob("*/metrics.json"), key=lambda p: _number(p.parent.name)):
        job = metrics_path.parent
        metrics = json.loads(metrics_path.read_text())
        if metrics.get(metric) is None or job.name == "selected":
            continue
        overrides = refitting.recipe(job) if (job / ".hydra" / "overrides.yaml").is_file() else []
        rows.append(
            {
                "job": job.name,
                "state": "complete",
                "metric": metrics[metric],
                "metric_se": metrics.get(f"{metric}_se"),
                "metric_std": metrics.get(f"{metric}_std"),
                "folds": metrics.get("data/num_folds"),
                "model": _model(overrides),
                **{key: metrics.get(key) for key in FROM_METRICS},
                "overrides": overrides,
            }
        )
    return rows


def _number(name: str) -> tuple:
    return (0, int(name)) if name.isdigit() else (1, name)


def _model(overrides: list[str]) -> str:
    """The model family a job trained: its `model=` override, else the config's default."""
    return next((o.partition("=")[2] for o in overrides if o.startswith("model=")), "default")


def read_study(sweep_dir: Path, study_name: str | None):
    """The sweep's Optuna study (`study.journal`), or None when the sweep was not a study."""
    journal = sweep_dir / "study.journal"
    if not journal.is_file():
        return None
    import optuna

    from hyperlab.training.trial import open_storage

    storage = open_storage(str(journal))
    names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
    name = study_name if study_name in names else names[0]
    return optuna.load_study(study_name=name, storage=storage)


def unfinished_rows(study, done: set[str]) -> list[dict]:
    """Pruned, failed and running trials: a pruned one with the running mean it was stopped at."""
    from hyperlab.search.space import override_key  # optuna loads only for studies

    rows = []
    for trial in study.get_trials(deepcopy=False) if study is not None else []:
        if str(trial.number) in done or trial.state.name == "COMPLETE":
            continue
        steps = trial.intermediate_values
        last = max(steps) if steps else None
        rows.append(
            {
                "job": str(trial.number),
                "state": trial.state.name.lower(),
                "metric": steps[last] if last is not None else None,
                "stopped_at": _stopped_at(last),
                "trainer/epochs": trial.user_attrs.get("epochs"),
                "model": str(trial.params.get("model", "default")),
                "overrides": [f"{override_key(k)}={v}" for k, v in trial.params.items()],
            }
        )
    return rows


def _stopped_at(step: int | None) -> str | None:
    """Where a pruned trial stopped, from its last report's step (hyperlab.training.trial: a cross-validated
    trial reports fold 0's epochs as 1..100 % of them, then fold k >= 1 as FOLDS_FROM + k)."""
    from hyperlab.training.trial import FOLDS_FROM  # lightning loads only for studies

    if step is None:
        return None
    return f"{step}% of fold 0" if step <= FOLDS_FROM else f"fold {step - FOLDS_FROM}"


def epochs_trained(rows: list[dict]) -> int:
    """Epochs the trials trained: summed over folds (`trainer/epochs`), a single run's, up to a pruned one's stop."""
    return sum(r.get("trainer/epochs") or r.get("trainer/epoch") or 0 for r in rows if r["state"] != "baseline")


def budget(rows: list[dict], study) -> str:
    """The compute a search spent: epochs trained over every trial and fold (pruned ones up to their stop), and
    the study's wall time from its first trial's start to its last trial's end."""
    line = f"budget: {epochs_trained(rows)} epochs trained, summed over trials and folds"
    times = [t for t in (study.get_trials(deepcopy=False) if study is not None else []) if t.datetime_complete]
    if times:
        wall = max(t.datetime_complete for t in times) - min(t.datetime_start for t in times)
        line += f"; {wall.total_seconds():.0f} s wall from the first trial's start to the last one's end"
    return line


def families_left_out(study) -> str:
    """The families the search never tried: their networks cannot take the data (hyperlab.search.families)."""
    left_out = study.user_attrs.get("families_left_out") if study is not None else None
    if not left_out:
        return ""
    names = ", ".join(f"model={family}" for family in left_out["families"])
    shape = tuple(left_out["input_shape"])
    return "\n" + _wrap(f"left out before any trial: {names}, whose networks cannot take inputs of shape {shape}")


# --- the selection rule ----------------------------------------------------------------------------------------


def choose(rows: list[dict], maximize: bool, rule: str = "one_se", cost: str = "model/flops") -> dict:
    """The winner among the complete rows, and how it was chosen: {winner, best, threshold, rule, why}."""
    if rule not in RULES:
        raise SystemExit(f"error: --rule {rule!r}: choose one of {', '.join(RULES)}")
    complete = [r for r in rows if r["state"] == "complete"]
    sign = 1 if maximize else -1
    best = max(complete, key=lambda r: sign * r["metric"])
    if rule == "best" or best.get("metric_se") is None:
        why = "the best mean" if rule == "best" else "the best (no standard error: the trials were not cross-validated)"
        return {"winner": best, "best": best, "threshold": None, "rule": rule, "why": why}
    threshold = best["metric"] - sign * best["metric_se"]
    within = [r for r in complete if sign * (r["metric"] - threshold) >= 0]
    winner = min(within, key=lambda r: (_cost(r, cost), -sign * r["metric"]))
    why = (
        f"the cheapest by {cost} of the {len(within)} trial(s) with mean {'>=' if maximize else '<='} "
        f"{threshold:.4f} (best {best['metric']:.4f} {'-' if maximize else '+'} its SE {best['metric_se']:.4f})"
    )
    return {"winner": winner, "best": best, "threshold": threshold, "rule": rule, "why": why}


def _cost(row: dict, cost: str) -> float:
    value = row.get(cost)
    return math.inf if value is None else value


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


# --- outputs ---------------------------------------------------------------------------------------------------


def write_leaderboard(rows: list[dict], path: Path) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=[*COLUMNS, "overrides"], extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "overrides": " ".join(row["overrides"])})


def _figure(value, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def report(rows: list[dict], choice: dict, metric: str, cost: str, refit: dict | None, top: int = 12) -> str:
    """The selection as a person reads it, every line within 80 columns."""
    states = {s: sum(r["state"] == s for r in rows) for s in ("complete", "pruned", "fail", "running")}
    complete = [r for r in rows if r["state"] == "complete"]
    folds = complete[0].get("folds") if complete else None
    estimate = f"{folds}-fold CV mean ± SE" if folds else "one validation split"
    lines = [
        f"{len(rows)} trials: {states['complete']} complete, {states['pruned']} pruned, {states['fail']} failed"
        + (f", {states['running']} running" if states["running"] else ""),
        f"objective {metric}, {estimate}",
    ]
    interpret = any(r.get("interpret/features_90") is not None for r in complete)
    header = f"{'trial':>5}  {'model':<8} {metric:>15}  {'± SE':>6}  {cost.split('/')[-1]:>9}  {'train s':>7}"
    lines += ["", header + ("  feat90" if interpret else "")]
    for row in complete[:top]:
        mark = " <- selected" if row is choice["winner"] else (" <- best" if row is choice["best"] else "")
        flops = row.get(cost)
        line = (
            f"{row['job']:>5}  {row['model'][:8]:<8} {row['metric']:>15.4f}  {_figure(row.get('metric_se')):>6}  "
            f"{'-' if flops is None else f'{flops:.3g}':>9}  {_figure(row.get('time/train_s'), 1):>7}"
        )
        if interpret:
            line += f"  {_figure(row.get('interpret/features_90'), 2):>6}"
        lines.append(line + mark)
    if len(complete) > top:
        lines.append(f"  ... {len(complete) - top} more complete trials in leaderboard.csv")
    pruned = [r for r in rows if r["state"] == "pruned" and r["metric"] is not None]
    if pruned:
        stops = ", ".join(f"{r['job']} ({r['metric']:.3f} at {r['stopped_at']})" for r in pruned[:6])
        lines.append(f"pruned (last report, where): {stops}" + (" ..." if len(pruned) > 6 else ""))
    winner = choice["winner"]
    lines += [
        "",
        f"rule {choice['rule']}: {choice['why']}",
        f"  -> trial {winner['job']}: {' '.join(winner['overrides'])}",
    ]
    if refit:
        test = runs.test_key(metric)
        lines.append(
            f"refit on train + val, {refit['refit/epochs']} epochs: {test} {refit.get(test, float('nan')):.4f} "
            f"(search estimate {refit['search/metric']:.4f} ± {_figure(refit.get('search/metric_se'))})"
        )
    return "\n".join(_wrap(line) for line in lines)


def baseline_lines(baselines: list[dict], winner: dict, maximize: bool, refit: dict | None, metric: str) -> str:
    """The classical baselines (hyperlab.search.baselines) under the ranking, and the one-line verdict."""
    if not baselines:
        return ""
    lines = ["", "", f"{'classical baselines (same folds)':<48} {'CV':>7}  {'± SE':>6}  {'test':>6}"]
    for row in baselines:
        lines.append(
            f"  {row['model']:<8} {' '.join(row['overrides'])[:37]:<37} {row['metric']:>7.4f}  "
            f"{_figure(row['metric_se']):>6}  {row['test_metric']:>6.4f}"
        )
    if refit:
        test = refit.get(runs.test_key(metric), float("nan"))
        se = _figure(winner.get("metric_se"))
        lines.append(f"  {'the selected net, refit':<46} {winner['metric']:>7.4f}  {se:>6}  {test:>6.4f}")
    from hyperlab.search.baselines import verdict  # torch and scikit-learn load only when baselines are asked for

    lines.append(verdict(baselines, winner, maximize))
    return "\n".join(_wrap(line) for line in lines)


def _wrap(line: str, width: int = 80) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(line, width, subsequent_indent="     ")) if len(line) > width else line


def plot(rows: list[dict], choice: dict, importances: dict | None, metric: str, cost: str, path: Path) -> None:
    """Three panels: metric +- SE against cost (by model family), the optimisation history, importances."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    complete = [r for r in rows if r["state"] == "complete" and r.get(cost) is not None]
    fig, (left, middle, right) = plt.subplots(1, 3, figsize=(15, 4.2))
    for family in sorted({r["model"] for r in complete}):
        group = [r for r in complete if r["model"] == family]
        left.errorbar(
            [r[cost] for r in group],
            [r["metric"] for r in group],
            yerr=[r.get("metric_se") or 0 for r in group],
            fmt="o",
            capsize=2,
            alpha=0.7,
            label=family,
        )
    for key, marker, label in (("best", "s", "best mean"), ("winner", "*", "selected")):
        row = choice[key]
        left.plot([row[cost]], [row["metric"]], marker, ms=14, mfc="none", mec="black", label=label)
    if choice["threshold"] is not None:
        left.axhline(choice["threshold"], ls=":", c="grey", label="best - 1 SE")
    left.set(xscale="log", xlabel=cost, ylabel=metric, title="metric ± SE vs cost")
    left.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # log-axis minor labels overlap
    left.legend(fontsize=7, loc="best")
    numbered = sorted((r for r in rows if r["metric"] is not None and r["job"].isdigit()), key=lambda r: int(r["job"]))
    for state, marker in (("complete", "o"), ("pruned", "x")):
        shown = [r for r in numbered if r["state"] == state]
        middle.plot([int(r["job"]) for r in shown], [r["metric"] for r in shown], marker, label=state)
    done = [r for r in numbered if r["state"] == "complete"]
    if done:
        sign = 1 if choice["best"]["metric"] >= min(r["metric"] for r in done) else -1
        running, best = [], None
        for r in done:
            best = r["metric"] if best is None or sign * (r["metric"] - best) > 0 else best
            running.append(best)
        middle.step([int(r["job"]) for r in done], running, where="post", c="black", label="best so far")
    middle.set(xlabel="trial", ylabel=metric, title="optimisation history")
    middle.legend(fontsize=8)
    for ax in (left, middle):  # a few failed-to-learn trials would squash the range that decides anything
        _focus(ax, [r["metric"] for r in numbered or complete], choice["best"]["metric"])
    if importances:
        names = list(importances)[::-1]
        right.barh(names, [importances[n] for n in names])
    right.set(xlabel="importance (Optuna's default evaluator)", title="parameter importances")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _focus(ax, values: list[float], best: float) -> None:
    """Limit the metric axis to the best 80% of trials (the rest sit at its edge, as their count says)."""
    ranked = sorted(values, key=lambda v: abs(v - best))
    edge = ranked[int(0.8 * (len(ranked) - 1))]
    margin = 0.15 * abs(best - edge) or 0.01 * abs(best) or 0.01
    low, high = sorted((best, edge))
    outside = sum(not (low - margin <= v <= high + margin) for v in values)
    ax.set_ylim(low - margin, high + margin)
    if outside:
        ax.set_title(f"{ax.get_title()} ({outside} off the axis)")


def write_importances(study, path: Path) -> dict | None:
    if study is None:
        return None
    import optuna

    try:
        with warnings.catch_warnings():  # "some regimes have less than 2 trials": conditional params, small studies
            warnings.simplefilter("ignore", UserWarning)
            importances = optuna.importance.get_param_importances(study)
    except (ValueError, RuntimeError):  # too few complete trials, or a single distinct value
        return None
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([("param", "importance"), *importances.items()])
    return importances


# --- the command -----------------------------------------------------------------------------------------------


def settings(sweep_dir: Path) -> dict:
    """The sweep's own settings from multirun.yaml (objective, direction, selection, search path)."""
    path = sweep_dir / "multirun.yaml"
    if not path.is_file():
        return {}
    cfg = yaml.safe_load(path.read_text())
    sweeper = (cfg.get("hydra") or {}).get("sweeper") or {}
    directions = sweeper.get("directions") or ["maximize"]
    return {
        "metric": cfg.get("optimized_metric"),
        "mode": "max" if directions[0] == "maximize" else "min",
        "selection": sweeper.get("selection") or {},
        "study_name": sweeper.get("study_name"),
        "searchpath": (cfg.get("hydra") or {}).get("searchpath") or [],
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("sweep_dir", type=Path)
    parser.add_argument("--metric", default=None, help="a metrics.json key; default: the sweep's optimized_metric")
    parser.add_argument("--mode", choices=["max", "min"], default=None, help="default: the study's direction")
    parser.add_argument("--rule", choices=RULES, default=None, help="default: hydra.sweeper.selection.rule or one_se")
    parser.add_argument("--cost", default=None, help="a metrics.json key; default: model/flops")
    parser.add_argument(
        "--baselines",
        action="store_true",
        help="score scikit-learn's tuned classical models on the same folds and test rows (baselines.json); "
        "default: hydra.sweeper.selection.baselines",
    )
    parser.add_argument(
        "--refit",
        choices=["no", "missing", "force"],
        default="no",
        help="refit the winner on train + val into SWEEP_DIR/selected: missing = unless already there",
    )
    args = parser.parse_args(argv)
    sweep_dir, found = args.sweep_dir, settings(args.sweep_dir)
    selection = found.get("selection", {})
    metric = args.metric or found.get("metric") or "val/acc"
    maximize = (args.mode or found.get("mode") or "max") == "max"
    rule = args.rule or selection.get("rule") or "one_se"
    cost = args.cost or selection.get("cost") or "model/flops"
    rows = read_jobs(sweep_dir, metric)
    nested = sorted(sweep_dir.glob("outer_*/selected/metrics.json"))
    if not rows and nested:  # a nested cross-validation: one search per outer fold, each with its own report
        print(nested_cv.summary(sweep_dir, len(nested)))
        return {"rows": [], "nested": json.loads((sweep_dir / "nested.json").read_text())}
    if not rows:
        raise SystemExit(f"error: no job under {sweep_dir} has a metrics.json with {metric!r}")
    rows.sort(key=lambda r: r["metric"], reverse=maximize)
    study = read_study(sweep_dir, found.get("study_name"))
    everything = rows + unfinished_rows(study, {r["job"] for r in rows})
    choice = choose(rows, maximize, rule, cost)
    importances = write_importances(study, sweep_dir / "importances.csv")
    plot(everything, choice, importances, metric, cost, sweep_dir / "selection.png")
    winner, searchpath = choice["winner"], found.get("searchpath", [])
    job_cfg, scored = None, None
    if winner["overrides"] and (sweep_dir / winner["job"] / ".hydra").is_dir():
        job_cfg = refitting.compose(winner["overrides"], searchpath)
        scored = refitting.experiment(job_cfg, searchpath)
        header = (
            f"# Trial {winner['job']} of {sweep_dir} as it was scored: {metric} = {winner['metric']:.4f}\n"
            f"#   cp best_experiment.yaml conf/experiment/mine.yaml && python train.py experiment=mine\n"
        )
        refitting.write_experiment(sweep_dir / "best_experiment.yaml", scored, header)
    compete = selection.get("baselines") == "compete" and args.refit != "no"
    wanted = args.baselines or selection.get("baselines", False) or (sweep_dir / "baselines.json").is_file()
    baselines = _baselines(sweep_dir, job_cfg, metric, compete) if wanted and job_cfg is not None else []
    taken = _beating(baselines, winner, maximize) if compete else None
    if taken:  # the classical model is the one selected; the net is not refit
        search = {"objective": metric, "rule": rule, "metric": taken["metric"], "metric_se": taken["metric_se"]}
        refit, chosen = None, competing.take(sweep_dir, taken, job_cfg.data, search)
    else:
        refit = _refit(args.refit, sweep_dir, winner, metric, rule, job_cfg, scored, searchpath)
    write_leaderboard(everything + baselines, sweep_dir / "leaderboard.csv")
    print(report(everything, choice, metric, cost, refit))
    print(
        _wrap(budget(everything, study))
        + families_left_out(study)
        + baseline_lines(baselines, winner, maximize, refit, metric)
        + ("\n" + _wrap(competing.line(taken, chosen, metric, sweep_dir)) if taken else "")
    )
    return {"rows": everything, **choice, "refit": refit, "baselines": baselines, "baseline_taken": taken}


def _beating(baselines: list[dict], winner: dict, maximize: bool) -> dict | None:
    from hyperlab.search.baselines import beating  # scikit-learn loads only when baselines are asked for

    return beating(baselines, winner, maximize)


def _baselines(sweep_dir: Path, job_cfg, metric: str, keep: bool = False) -> list[dict]:
    """The baselines of this sweep's data, scored once into baselines.json (delete it to score them again); with
    `keep` (baselines=compete), each one's refit pipeline too, under <sweep>/baselines/."""
    path = sweep_dir / "baselines.json"
    if not path.is_file() or (keep and not (sweep_dir / competing.KEPT).is_dir()):
        from hyperlab.search.baselines import score

        found = score(job_cfg.data, metric, sweep_dir / competing.KEPT if keep else None)
        path.write_text(json.dumps(found, indent=1))
    return json.loads(path.read_text())


def _refit(
    mode: str, sweep_dir: Path, winner: dict, metric: str, rule: str, job_cfg, scored: dict, searchpath: list[str]
) -> dict | None:
    """The refit in `selected/`: made when asked (`force`) or missing, else read back as it is."""
    done = sweep_dir / "selected" / "metrics.json"
    if done.is_file() and mode != "force":
        refit = runs.read_metrics(done.parent)
        if "search/metric" not in refit:
            return None
        if str(refit["refit/trial"]) != winner["job"]:
            print(
                f"note: the winner is now trial {winner['job']}; selected/ holds the refit of trial "
                f"{refit['refit/trial']}: --refit force redoes it"
            )
        return refit
    if mode == "no":
        return None
    if done.parent.exists():  # --refit force: the earlier refit is kept beside, never overwritten
        print(f"note: the earlier refit moved to {refitting.set_aside(done.parent)}")
    search = {
        "objective": metric,
        "rule": rule,
        "metric": winner["metric"],
        "metric_se": winner.get("metric_se"),
        "metric_std": winner.get("metric_std"),
    }
    return refitting.refit(sweep_dir, winner["job"], job_cfg, scored, searchpath, search)


if __name__ == "__main__":
    main()
