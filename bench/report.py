"""Shared by the bench scripts: print a section and write it into bench/results.md, replacing the section of the
same name from an earlier run (so the file holds the latest figures of every benchmark)."""

import json
import os
import platform
import re
import statistics
import time
from datetime import date
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results.md"
HEADER = "# Benchmarks\n\nWritten by `make bench` (each script also runs alone); ratios compare figures of one run.\n"


def machine() -> str:
    import torch

    gpu = f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    threads = torch.get_num_threads()
    return f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, {threads} threads{gpu}"


def median_time(fn, repeats: int) -> float:
    """Median wall seconds of `fn()` over `repeats` calls."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def publish(name: str, command: str, body: list[str]) -> None:
    section = "\n".join([f"## {name}", f"{date.today()}, {machine()}", f"Command: `{command}`", "", *body]) + "\n"
    print(section)
    text = RESULTS.read_text() if RESULTS.exists() else HEADER
    pattern = re.compile(rf"^## {re.escape(name)}\n.*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub(lambda _: section + "\n", text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + section
    RESULTS.write_text(text)


def kept(partial: Path, key: str, compute):
    """`compute()`, remembered under `key` in the JSON file `partial`: a stopped bench resumes where it was."""
    done = json.loads(partial.read_text()) if partial.is_file() else {}
    if key not in done:
        done[key] = compute()
        partial.write_text(json.dumps(done, indent=1))
    return done[key]


def run_objects(overrides: list[str], run_dir: str):
    """train.py's data module, module and Trainer for `overrides`, writing under `run_dir` (the run's config in its
    checkpoints, as train.py stores it)."""
    from omegaconf import OmegaConf

    from hyperlab.builders import build_module, build_trainer, run_callbacks
    from hyperlab.config.cli import compose

    cfg = compose(overrides, run_dir)
    datamodule, module = build_module(cfg)
    config = OmegaConf.to_container(cfg, resolve=True)
    trainer = build_trainer(cfg.trainer, cfg.callbacks, cfg.logger, run_callbacks(config, cfg.optimized_metric))
    return datamodule, module, trainer


class Clock:
    """Wall seconds spent inside wrapped methods, summed per part. A call made while another wrapped call runs
    counts for the outer one only (the LR monitor's logging is the monitor's), so the parts add up."""

    def __init__(self):
        self.spent: dict[str, float] = {}
        self.depth = 0

    def wrap(self, part: str, owner, name: str) -> None:
        """Time `owner.name` under `part`; an attribute set on an instance shadows its class's method."""
        method = getattr(owner, name)
        self.spent.setdefault(part, 0.0)

        def timed(*args, **kwargs):
            if self.depth:
                return method(*args, **kwargs)
            self.depth += 1
            start = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                self.spent[part] += time.perf_counter() - start
                self.depth -= 1

        setattr(owner, name, timed)

    def wrap_callback(self, part: str, callback) -> None:
        """Every hook `callback`'s class overrides (Lightning looks hooks up on the instance): its own work, not
        Lightning's dispatch to it."""
        from lightning.pytorch import Callback

        for name, base in vars(Callback).items():
            if not name.startswith("_") and callable(base) and getattr(type(callback), name) is not base:
                self.wrap(part, callback, name)
