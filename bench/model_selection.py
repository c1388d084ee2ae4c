"""Model selection against scikit-learn's tuned baselines, on hyperlab's own splits.

    python bench/model_selection.py [--datasets digits,breast_cancer,wine] [--seeds 0,1,2] [--out DIR]

For each dataset and split seed (`data.split_seed`: the same test rows for every method):
- hyperlab: `python train.py -m hparams_search=model_selection data=D data.split_seed=S`, the default model
  selection (5-fold CV with standard errors, fold pruning, the one-SE rule, the refit on train + val, one test);
  on tabular data `"hydra.sweeper.params.model='choice(mlp)'"`, as cnn and resnet need images. Figures: the refit's
  test/acc, the search's CV estimate ± SE, the wall time of the whole command (search, selection, refit);
- the fold ensemble of the same winner (`python eval.py ckpt_path=<winner's job dir>`: mean of its 5 fold models'
  probabilities), the alternative to the refit;
- the default config, `python train.py data=D data.split_seed=S`;
- scikit-learn: GridSearchCV (5-fold stratified, refit on train + val) of StandardScaler + SVC, of StandardScaler +
  LogisticRegression, and of HistGradientBoostingClassifier, fitted on the same train + val rows, tested on the
  same test rows.
A finished (dataset, seed) is kept in DIR and not run again.
"""

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from hydra.utils import instantiate
from report import publish
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from hyperlab.config.cli import compose

ROOT = Path(__file__).resolve().parents[1]
IMAGES = {"digits"}  # the datasets cnn and resnet can read
BASELINES = {
    "SVC": (
        make_pipeline(StandardScaler(), SVC()),
        {"svc__C": [0.1, 1, 10, 100], "svc__gamma": ["scale", 1e-3, 1e-2, 1e-1]},
    ),
    "LogReg": (
        make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)),
        {"logisticregression__C": [0.01, 0.1, 1, 10, 100]},
    ),
    "HGB": (
        HistGradientBoostingClassifier(random_state=0),
        {"learning_rate": [0.05, 0.1, 0.2], "max_leaf_nodes": [15, 31]},
    ),
}


def run(command: list[str], log: Path) -> float:
    """Run a command to completion with its output in `log`; its wall seconds."""
    start = time.perf_counter()
    with open(log, "w") as out:
        subprocess.run(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, check=True)
    return time.perf_counter() - start


def hyperlab(dataset: str, seed: int, out: Path) -> dict:
    sweep = out / "search"
    command = [sys.executable, "train.py", "-m", "hparams_search=model_selection", f"data={dataset}"]
    command += [f"data.split_seed={seed}", f"hydra.sweep.dir={sweep}"]
    if dataset not in IMAGES:
        command.append("hydra.sweeper.params.model='choice(mlp)'")
    wall = run(command, out / "search.log")
    selected = json.loads((sweep / "selected" / "metrics.json").read_text())
    winner = sweep / str(selected["refit/trial"])
    run([sys.executable, "eval.py", f"ckpt_path={winner}", f"hydra.run.dir={out / 'ensemble'}"], out / "ensemble.log")
    ensemble = json.loads((out / "ensemble" / "metrics.json").read_text())
    trials = [json.loads(p.read_text()) for p in sweep.glob("[0-9]*/metrics.json")]
    return {
        "refit": selected["test/acc"],
        "cv": selected["search/metric"],
        "cv_se": selected["search/metric_se"],
        "ensemble": ensemble["test/acc"],
        "wall_s": wall,
        "winner": " ".join(short(o) for o in refit_overrides(winner) if not o.startswith(("data", "hparams", "hydra"))),
        "complete_trials": len(trials),
    }


def short(override: str) -> str:
    """`lr=0.016332587466589943` -> `lr=0.0163`."""
    key, _, value = override.partition("=")
    try:
        return f"{key}={float(value):.3g}" if "." in value or "e" in value else override
    except ValueError:
        return override


def refit_overrides(job: Path) -> list[str]:
    from hyperlab.search.refit import recipe

    return recipe(job)


def default_config(dataset: str, seed: int, out: Path) -> float:
    run(
        [sys.executable, "train.py", f"data={dataset}", f"data.split_seed={seed}", f"hydra.run.dir={out / 'default'}"],
        out / "default.log",
    )
    return json.loads((out / "default" / "metrics.json").read_text())["test/acc"]


def sklearn_baselines(dataset: str, seed: int) -> dict:
    """GridSearchCV on hyperlab's train + val rows of this split, scored on its test rows."""
    cfg = compose([f"data={dataset}", f"data.split_seed={seed}"], "/tmp/hyperlab_bench_compose")
    data = instantiate(cfg.data)
    data.setup("fit")
    x, y = (np.asarray(a) for a in data.load())
    trainval = np.concatenate([data.indices["train"], data.indices["val"]])
    test = data.indices["test"]
    results = {}
    for name, (estimator, grid) in BASELINES.items():
        start = time.perf_counter()
        search = GridSearchCV(estimator, grid, cv=StratifiedKFold(5, shuffle=True, random_state=seed), n_jobs=1)
        search.fit(x[trainval], y[trainval])
        results[name] = {"test": search.score(x[test], y[test]), "wall_s": time.perf_counter() - start}
    return results


def one(dataset: str, seed: int, out: Path) -> dict:
    done = out / "result.json"
    if done.is_file():
        return json.loads(done.read_text())
    out.mkdir(parents=True, exist_ok=True)
    result = {
        "dataset": dataset,
        "seed": seed,
        "hyperlab": hyperlab(dataset, seed, out),
        "default": default_config(dataset, seed, out),
        "sklearn": sklearn_baselines(dataset, seed),
    }
    done.write_text(json.dumps(result, indent=2))
    return result


def mean_std(values: list[float]) -> str:
    return f"{statistics.fmean(values):.4f} ± {statistics.stdev(values):.4f}" if len(values) > 1 else f"{values[0]:.4f}"


def tables(results: list[dict]) -> list[str]:
    lines = [
        "Test accuracy on hyperlab's test split of each seed (the same rows for every method). hyperlab: the",
        "selected model refit on train + val; CV: the search's estimate for it (5-fold mean ± SE); ensemble: the",
        "winner's 5 fold models averaged instead of the refit; default: `python train.py data=D`. Wall: seconds on",
        "this machine, hyperlab's for the whole command (search, selection, refit), scikit-learn's per grid search.",
        "",
        "| data | seed | hyperlab refit | CV ± SE | ensemble | default | SVC | LogReg | HGB | hyperlab wall s "
        "| SVC / LR / HGB wall s | winner |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        h, s = r["hyperlab"], r["sklearn"]
        lines.append(
            f"| {r['dataset']} | {r['seed']} | {h['refit']:.4f} | {h['cv']:.4f} ± {h['cv_se']:.4f} "
            f"| {h['ensemble']:.4f} "
            f"| {r['default']:.4f} | {s['SVC']['test']:.4f} | {s['LogReg']['test']:.4f} | {s['HGB']['test']:.4f} "
            f"| {h['wall_s']:.0f} | {s['SVC']['wall_s']:.1f} / {s['LogReg']['wall_s']:.1f} / {s['HGB']['wall_s']:.1f} "
            f"| {' '.join(short(o) for o in h['winner'].split())} |"
        )
    lines += [
        "",
        "Mean ± std over split seeds:",
        "",
        "| data | hyperlab refit | ensemble | default | SVC | LogReg | HGB | hyperlab wall s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for dataset in dict.fromkeys(r["dataset"] for r in results):
        rs = [r for r in results if r["dataset"] == dataset]
        cells = [
            mean_std([figure(r) for r in rs])
            for figure in (
                lambda r: r["hyperlab"]["refit"],
                lambda r: r["hyperlab"]["ensemble"],
                lambda r: r["default"],
                *(lambda r, name=name: r["sklearn"][name]["test"] for name in BASELINES),
            )
        ]
        wall = statistics.fmean(r["hyperlab"]["wall_s"] for r in rs)
        lines.append(f"| {dataset} | {' | '.join(cells)} | {wall:.0f} |")
    lines += ["", *targets(results)]
    return lines


def targets(results: list[dict]) -> list[str]:
    """The issue's targets, each with the figure reached."""
    digits = [r for r in results if r["dataset"] == "digits"]
    lines = ["Targets (issue 12):", ""]
    if digits:
        refit = statistics.fmean(r["hyperlab"]["refit"] for r in digits)
        svc = statistics.fmean(r["sklearn"]["SVC"]["test"] for r in digits)
        above = all(r["hyperlab"]["refit"] > r["default"] for r in digits)
        slowest = max(r["hyperlab"]["wall_s"] for r in digits)
        lines += [
            f"- digits, refit test/acc mean over seeds >= tuned SVC's: {refit:.4f} vs {svc:.4f}: "
            + ("met" if refit >= svc else "NOT met"),
            "- digits, above the default config on every split: "
            + ", ".join(f"{r['hyperlab']['refit']:.4f} vs {r['default']:.4f}" for r in digits)
            + (": met" if above else ": NOT met"),
            f"- digits, whole search under 5 minutes on 2 cores: slowest {slowest:.0f} s: "
            + ("met" if slowest < 300 else "NOT met"),
        ]
        agree = [abs(r["hyperlab"]["refit"] - r["hyperlab"]["cv"]) for r in digits]
        lines.append(
            "- digits, CV estimate vs refit test score: |difference| "
            + ", ".join(f"{a:.4f}" for a in agree)
            + f" (test split of {360} rows: one binomial SE is about 0.007 at 0.98)"
        )
    worse = [r for r in results if r["hyperlab"]["refit"] < r["default"]]
    lines.append(
        "- every dataset, selected not worse than the default on test: "
        + ("met" if not worse else "NOT met on " + ", ".join(f"{r['dataset']} seed {r['seed']}" for r in worse))
    )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", default="digits,breast_cancer,wine")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--out", type=Path, default=ROOT / "logs" / "bench" / "model_selection")
    args = parser.parse_args()
    results = []
    for dataset in args.datasets.split(","):
        for seed in (int(s) for s in args.seeds.split(",")):
            results.append(one(dataset, seed, args.out / dataset / str(seed)))
            print(json.dumps(results[-1]), flush=True)
    publish(
        "Model selection",
        f"python bench/model_selection.py --datasets {args.datasets} --seeds {args.seeds}",
        tables(results),
    )


if __name__ == "__main__":
    main()
