"""What one fold of a model-selection trial costs besides its epochs: hyperlab's per-fit work against Lightning's.

    python bench/fit_overhead.py [--repeats 9]

A search fits thousands of short runs (24 trials x 5 folds on digits), so whatever a fit pays once (building the
data module, network and Trainer, scoring, the figures and files of metrics.json) is paid per fold. Two variants
of the same one-epoch fit of the default MLP on digits fold 0, as a model-selection trial runs it (no checkpoint,
no progress bar, lean validation, the CSV logger), interleaved, `--repeats` rounds, medians:
  hyperlab   `hyperlab.train.train_once(cfg)`, timed by phase: build (data module + LightningModule), Trainer
             (its callbacks and logger), fit, score (validate the final weights), the rest (figures, provenance,
             metrics.json, loggers closed);
  lightning  Lightning's floor for the same work: the module and data module built beforehand (not timed), then
             `L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
             enable_model_summary=False)`, its fit and a `validate`.
"""

import argparse
import logging
import statistics
import tempfile
import time
import warnings

import lightning as L
from report import publish

import hyperlab.train as wiring
from hyperlab.builders import build_module
from hyperlab.config.cli import compose

warnings.filterwarnings("ignore")
logging.getLogger("lightning").setLevel(logging.ERROR)

FOLD = [
    "data.num_folds=5",
    "data.fold=0",
    "trainer.max_epochs=1",
    "test=false",
    "callbacks.early_stopping=null",
    "callbacks.model_checkpoint=null",
    "callbacks.rich_progress_bar=null",
    "callbacks.lr_monitor=null",
    "trainer.enable_progress_bar=false",
]
PHASES = {"build": "build_module", "Trainer": "build_trainer", "score": "score"}


def hyperlab_fit() -> dict[str, float]:
    """One train_once, its phases timed by wrapping the functions hyperlab.train calls."""
    spent: dict[str, float] = {}
    originals = {name: getattr(wiring, attribute) for name, attribute in PHASES.items()}

    def timed(name, function):
        def call(*args, **kwargs):
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                spent[name] = spent.get(name, 0.0) + time.perf_counter() - start

        return call

    for name, attribute in PHASES.items():
        setattr(wiring, attribute, timed(name, originals[name]))
    try:
        cfg = compose(FOLD, tempfile.mkdtemp())
        start = time.perf_counter()
        metrics = wiring.train_once(cfg)
        total = time.perf_counter() - start
    finally:
        for name, attribute in PHASES.items():
            setattr(wiring, attribute, originals[name])
    spent["fit"] = metrics["time/train_s"]
    spent["rest"] = total - sum(spent.values())
    spent["total"] = total
    return spent


def lightning_fit() -> dict[str, float]:
    cfg = compose(FOLD, tempfile.mkdtemp())
    datamodule, module = build_module(cfg)
    start = time.perf_counter()
    trainer = L.Trainer(
        max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False
    )
    built = time.perf_counter()
    trainer.fit(module, datamodule=datamodule)
    fitted = time.perf_counter()
    trainer.validate(module, datamodule=datamodule, verbose=False)
    end = time.perf_counter()
    return {"Trainer": built - start, "fit": fitted - built, "score": end - fitted, "total": end - start}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    hyperlab_fit(), lightning_fit()  # warm-up: imports, first-call compilation of kernels
    runs = {"hyperlab": [], "lightning": []}
    for _ in range(args.repeats):
        runs["hyperlab"].append(hyperlab_fit())
        runs["lightning"].append(lightning_fit())
    columns = ["build", "Trainer", "fit", "score", "rest", "total"]
    median = {v: {c: statistics.median(r.get(c, 0.0) for r in rs) for c in columns} for v, rs in runs.items()}
    body = [
        f"One-epoch fit of the default MLP on digits fold 0 as a model-selection trial runs it; {args.repeats} "
        "interleaved rounds, median milliseconds per phase (Lightning's build is not timed: same objects).",
        "",
        "| variant | " + " | ".join(columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for variant, row in median.items():
        body.append(f"| {variant} | " + " | ".join(f"{1000 * row[c]:.1f}" for c in columns) + " |")
    beyond = median["hyperlab"]["total"] - median["hyperlab"]["build"] - median["lightning"]["total"]
    body += ["", f"hyperlab beyond Lightning's floor, build excluded: {1000 * beyond:.1f} ms per fit."]
    publish("Per-fit overhead", f"python bench/fit_overhead.py --repeats {args.repeats}", body)


if __name__ == "__main__":
    main()
