"""What each part of the default run costs an epoch: the progress bar, the logger, the LR monitor, checkpoints and
hyperlab's own callbacks, read from inside the fit.

    python bench/callback_costs.py [--repeats 5]

The default run (MLP width 256, digits, 20 epochs of 20 steps; no early stop, sanity check or test pass, as in
bench/step_throughput.py's `hyperlab` variant). In each fit, the wall seconds spent inside every hook a callback
overrides, inside the logger's methods (Lightning calls `log_metrics` and `save` from its loops) and in the rich
bar's redraws on its refresh thread (which hold the interpreter while the step waits for it), each as a share of
that fit: the cost of a part read without the noise of comparing two fits. A call inside another timed call
counts for the outer one (the LR monitor's logging is the monitor's). Beside it, the fit with the bar, the logger
(and the LR monitor, which needs one) or the monitor removed, against the default in the same rotated rounds.
Issue 32's target: the bar and the logger each under 5% of a default epoch.
"""

import argparse
import gc
import logging
import shutil
import statistics
import tempfile
import threading
import time
import warnings
from pathlib import Path

from report import Clock, publish, run_objects
from rich.live import Live

warnings.filterwarnings("ignore")
logging.getLogger("lightning").setLevel(logging.ERROR)
EPOCHS = 20
DEFAULT = [
    "callbacks.early_stopping=null",
    "++trainer.num_sanity_val_steps=0",
    "test=false",
    f"trainer.max_epochs={EPOCHS}",
]
VARIANTS = {
    "default": DEFAULT,
    "no progress bar": [*DEFAULT, "trainer.enable_progress_bar=false", "callbacks.rich_progress_bar=null"],
    "no logger (and no LR monitor)": [*DEFAULT, "~logger", "callbacks.lr_monitor=null"],
    "no LR monitor": [*DEFAULT, "callbacks.lr_monitor=null"],
}
LOGGER_METHODS = ("log_metrics", "log_hyperparams", "save", "finalize", "after_save_checkpoint")
REDRAWS = "progress bar: redraws on its refresh thread"


class RedrawClock:
    """Seconds the rich bar's refresh thread spends redrawing (`Live.refresh` called off the main thread; a redraw
    on the main thread happens inside a bar hook and is counted there)."""

    def __init__(self):
        self.spent, self.original = 0.0, Live.refresh

    def __enter__(self):
        original = self.original

        def refresh(live):
            if threading.current_thread() is threading.main_thread():
                return original(live)
            start = time.perf_counter()
            try:
                return original(live)
            finally:
                self.spent += time.perf_counter() - start

        Live.refresh = refresh
        return self

    def __exit__(self, *exc):
        Live.refresh = self.original


def part_of(callback) -> str:
    name = type(callback).__name__
    return {"RichProgressBar": "progress bar: its hooks", "LearningRateMonitor": "LR monitor"}.get(name, name)


def timed_fit(overrides: list[str]) -> tuple[float, dict[str, float]]:
    """The fit's wall seconds and the seconds spent inside each part."""
    run_dir = tempfile.mkdtemp(dir=Path(__file__).resolve().parents[1] / "logs")
    datamodule, module, trainer = run_objects(overrides, run_dir)
    clock = Clock()
    for callback in trainer.callbacks:
        clock.wrap_callback(part_of(callback), callback)
    for logger in trainer.loggers:
        for name in LOGGER_METHODS:
            clock.wrap(f"logger ({type(logger).__name__})", logger, name)
    gc.collect()  # each fit starts with the same garbage: none
    with RedrawClock() as redraws:
        start = time.perf_counter()
        trainer.fit(module, datamodule=datamodule)
        seconds = time.perf_counter() - start
    shutil.rmtree(run_dir)
    return seconds, {**clock.spent, **({REDRAWS: redraws.spent} if trainer.progress_bar_callback else {})}


def rows(repeats: int) -> list[str]:
    fits, inside = {name: [] for name in VARIANTS}, {}
    names = list(VARIANTS)
    for round_ in range(repeats):
        for name in names[round_ % len(names) :] + names[: round_ % len(names)]:  # each variant in each place
            seconds, spent = timed_fit(VARIANTS[name])
            fits[name].append(seconds)
            if name == "default":
                for part, part_seconds in spent.items():
                    inside.setdefault(part, []).append((part_seconds, seconds))
    default = statistics.median(fits["default"])
    body = [
        f"The default run, {EPOCHS} epochs of 20 steps: {default:.3f} s a fit (median), "
        f"{1000 * default / EPOCHS:.1f} ms an epoch.",
        "",
        "| part of the default run | ms an epoch (median) | share of the fit (median) | min..max share |",
        "|---|---|---|---|",
    ]
    share = {}
    for part, readings in sorted(inside.items(), key=lambda item: -statistics.median(s for s, _ in item[1])):
        shares = [100 * s / fit for s, fit in readings]
        share[part] = statistics.median(shares)
        per_epoch = 1000 * statistics.median(s for s, _ in readings) / EPOCHS
        body.append(f"| {part} | {per_epoch:.2f} | {share[part]:.1f}% | {min(shares):.1f}..{max(shares):.1f}% |")
    body += ["", "| fit | s (median) | min..max | vs default |", "|---|---|---|---|"]
    for name, seconds in fits.items():
        median = statistics.median(seconds)
        body.append(
            f"| {name} | {median:.3f} | {min(seconds):.3f}..{max(seconds):.3f} | {100 * (median / default - 1):+.1f}% |"
        )
    bar = sum(v for k, v in share.items() if k.startswith("progress bar"))
    logger = sum(v for k, v in share.items() if k.startswith("logger"))
    body += [
        "",
        f"Target (issue 32): the bar and the logger each under 5% of a default epoch: the bar (hooks and redraws) "
        f"{bar:.1f}%, {'met' if bar < 5 else 'MISSED'}; the logger {logger:.1f}%, {'met' if logger < 5 else 'MISSED'}.",
        "",
    ]
    return body


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    (Path(__file__).resolve().parents[1] / "logs").mkdir(exist_ok=True)
    body = [f"Variants interleaved, {args.repeats} rounds (rotated), medians.", "", *rows(args.repeats)]
    publish("Callback costs", f"python bench/callback_costs.py --repeats {args.repeats}", body)


if __name__ == "__main__":
    main()
