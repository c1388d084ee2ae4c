"""Model selection on tables under `compete`, against HistGradientBoosting and FLAML on the same rows (issue 31).

    python bench/table_compete.py [--tables churn,breast_cancer,wine] [--rows 3000]

Tables: `churn`, generated here (seed 0; no real table can be downloaded): `--rows` customers with string columns
(plan, 4 levels; contract, 3; region, 40), numbers (tenure, monthly charge, support calls), 5% of the plan, tenure,
region and charge cells missing, and a label drawn from a logistic model with thresholds and an interaction (what
trees find easily), 5% of labels flipped; `breast_cancer` and `wine`, scikit-learn's tables, written as CSVs.

Per table, in one run on this machine:
  hyperlab  `python train.py -m hparams_search=model_selection data=table data.path=T.csv data.target=label
            hydra.sweeper.selection.baselines=compete` (no family override: the search leaves out what cannot read
            a table); its wall and the selected model's test accuracy (a net, or a baseline under compete);
  HGB       scikit-learn's HistGradientBoostingClassifier at its defaults, categories from the frame's dtypes;
  FLAML     flaml.AutoML (lgbm, rf, extra_tree) with hyperlab's wall as its time budget: the same wall time.
The peers train on the rows hyperlab's refit trains on (train + val) and are tested on its test rows, read from
the raw CSV (their own encodings). "within 1 SE": the selected model's test accuracy is at least the best peer's
minus one binomial standard error of that peer's accuracy on the test rows. Needs `pip install -e ".[bench]"`
(flaml, lightgbm, xgboost-cpu).
Runs stay under logs/bench/table_compete (a stopped bench reruns only what it had not finished); writes the
"Model selection on tables (compete)" section of bench/results.md.
"""

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from report import kept, publish

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "logs" / "bench" / "table_compete"


def churn(rows: int) -> pd.DataFrame:
    """A churn-like table with categories, missing cells and a label trees model well."""
    rng = np.random.default_rng(0)
    plan = rng.choice(["basic", "plus", "pro", "family"], rows)
    contract = rng.choice(["monthly", "yearly", "two-year"], rows, p=[0.5, 0.3, 0.2])
    region = rng.choice([f"r{i:02d}" for i in range(40)], rows)
    tenure = rng.gamma(2.0, 12.0, rows).round(0)
    charge = (rng.normal(60, 20, rows) + 15 * (plan == "pro")).round(2)
    calls = rng.poisson(1.5, rows)
    region_effect = dict(zip([f"r{i:02d}" for i in range(40)], rng.normal(0, 0.7, 40), strict=True))
    logit = 1.6 * (contract == "monthly") - 0.05 * np.minimum(tenure, 40) + 1.2 * (calls > 3)
    logit += 0.03 * (charge - 60) * (contract == "monthly") + np.array([region_effect[r] for r in region]) - 0.3
    label = rng.random(rows) < 1 / (1 + np.exp(-3 * logit))  # x3: a label mostly decided by the columns ...
    label ^= rng.random(rows) < 0.05  # ... and 5% flipped
    frame = pd.DataFrame(
        {"plan": plan, "contract": contract, "region": region, "tenure": tenure, "charge": charge, "calls": calls}
    )
    for column in ("plan", "tenure", "region", "charge"):
        frame.loc[rng.random(rows) < 0.05, column] = None
    frame["label"] = np.where(label, "churned", "stayed")
    return frame


def sklearn_table(name: str) -> pd.DataFrame:
    from sklearn import datasets

    bunch = getattr(datasets, f"load_{name}")(as_frame=True)
    return bunch.data.assign(label=bunch.target.map(lambda code: bunch.target_names[code]))


def write_table(name: str, rows: int) -> Path:
    path = OUT / name / "table.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.is_file():
        (churn(rows) if name == "churn" else sklearn_table(name)).to_csv(path, index=False)
    return path


def hyperlab(path: Path) -> dict:
    """The whole search under compete: wall seconds, the selected model and its test accuracy."""
    sweep = path.parent / "sweep"
    command = [sys.executable, "train.py", "-m", "hparams_search=model_selection", "data=table"]
    command += [f"data.path={path}", "data.target=label", "hydra.sweeper.selection.baselines=compete"]
    start = time.perf_counter()
    with open(path.parent / "search.log", "w") as log:
        command.append(f"hydra.sweep.dir={sweep}")
        subprocess.run(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, check=True)
    wall = time.perf_counter() - start
    selected = json.loads((sweep / "selected" / "metrics.json").read_text())
    model = selected.get("refit/baseline") or "net"
    return {"wall_s": wall, "test/acc": selected["test/acc"], "selected": model}


def split_rows(path: Path) -> dict:
    """The refit's train + val rows and the test rows, as row numbers of the CSV (hyperlab's own split)."""
    from hyperlab.builders.rows import same_rows
    from hyperlab.config.cli import compose

    data = compose(["data=table", f"data.path={path}", "data.target=label"], path.parent / "compose").data
    rows = same_rows(data)["rows"]
    return {"train_val": [int(r) for r in rows["train_val"]], "test": [int(r) for r in rows["test"]]}


def frames(path: Path, rows: dict) -> tuple:
    table = pd.read_csv(path)
    for column in table.columns.drop("label"):
        if not pd.api.types.is_numeric_dtype(table[column]):
            table[column] = table[column].astype("category")
    fit, test = table.iloc[rows["train_val"]], table.iloc[rows["test"]]
    return fit.drop(columns="label"), fit["label"], test.drop(columns="label"), test["label"]


def hgb(path: Path, rows: dict) -> dict:
    from sklearn.ensemble import HistGradientBoostingClassifier

    x, y, x_test, y_test = frames(path, rows)
    start = time.perf_counter()
    model = HistGradientBoostingClassifier(categorical_features="from_dtype", random_state=0).fit(x, y)
    return {"test/acc": float(model.score(x_test, y_test)), "wall_s": time.perf_counter() - start}


def flaml(path: Path, rows: dict, budget_s: float) -> dict:
    from flaml import AutoML

    x, y, x_test, y_test = frames(path, rows)
    automl = AutoML()
    start = time.perf_counter()
    automl.fit(
        x, y, task="classification", metric="accuracy", time_budget=budget_s, seed=0, verbose=0,
        estimator_list=["lgbm", "rf", "extra_tree"],
    )  # fmt: skip
    accuracy = float(np.mean(automl.predict(x_test) == y_test.to_numpy()))
    return {"test/acc": accuracy, "wall_s": time.perf_counter() - start, "selected": automl.best_estimator}


def measure(name: str, rows: int) -> dict:
    path = write_table(name, rows)
    partial = path.parent / "partial.json"
    found = {"hyperlab": kept(partial, "hyperlab", lambda: hyperlab(path))}
    split = kept(partial, "rows", lambda: split_rows(path))
    found["HGB"] = kept(partial, "hgb", lambda: hgb(path, split))
    found["FLAML"] = kept(partial, "flaml", lambda: flaml(path, split, found["hyperlab"]["wall_s"]))
    found["shape"] = {"train_val": len(split["train_val"]), "test": len(split["test"])}
    return found


def rows_of(name: str, found: dict) -> list[str]:
    ours, n_test = found["hyperlab"], found["shape"]["test"]
    best = max(("HGB", "FLAML"), key=lambda peer: found[peer]["test/acc"])
    peer = found[best]["test/acc"]
    se = math.sqrt(peer * (1 - peer) / n_test)
    verdict = "met" if ours["test/acc"] >= peer - se else "missed"
    return [
        f"| {name} ({found['shape']['train_val']} / {n_test}) | {ours['selected']} | {ours['test/acc']:.4f} "
        f"| {ours['wall_s']:.0f} | {found['HGB']['test/acc']:.4f} | {found['FLAML']['test/acc']:.4f} "
        f"({found['FLAML']['selected']}) | {ours['test/acc'] - peer:+.4f} (SE {se:.4f}): {verdict} |"
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tables", default="churn,breast_cancer,wine")
    parser.add_argument("--rows", type=int, default=3000)
    args = parser.parse_args()
    results = {name: measure(name, args.rows) for name in args.tables.split(",")}
    body = [
        "Per table (train + val / test rows): the model `-m hparams_search=model_selection` selected under",
        "`hydra.sweeper.selection.baselines=compete` (net, or the baseline it took), its test accuracy and the whole",
        "command's wall seconds; HGB at its defaults and FLAML (lgbm, rf, extra_tree; time budget = hyperlab's",
        "wall) on the same rows; the selected model against the better peer, within one binomial SE of its accuracy.",
        "",
        "| table | selected | test acc | wall s | HGB | FLAML (its pick) | vs best peer |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, found in results.items():
        body += rows_of(name, found)
    publish("Model selection on tables (compete)", " ".join(["python bench/table_compete.py", *sys.argv[1:]]), body)


if __name__ == "__main__":
    main()
