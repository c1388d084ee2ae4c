"""What checkpointing every epoch costs when the disk is taken out: the same fit writing into RAM (tmpfs).

    python bench/checkpoint_floor.py [--repeats 5]

model.width=2048, 5 epochs, a 50 MB checkpoint (weights + AdamW state) every epoch, train.py's default writer.
Three variants interleaved, `--repeats` rounds, medians of fit seconds: no checkpoints
(`callbacks.model_checkpoint=null`), checkpoints on the run's disk, and checkpoints in /dev/shm (tmpfs: memory
only, no block device, no writeback). If the tmpfs variant still costs far more than issue 13's 3% target, the
cost is that of producing 50 MB per epoch on this machine's two cores, not of the disk.
"""

import argparse
import logging
import shutil
import statistics
import tempfile
import time
import warnings
from pathlib import Path

from omegaconf import OmegaConf
from report import publish

from hyperlab.builders import build_module, build_trainer, run_callbacks
from hyperlab.config.cli import compose

warnings.filterwarnings("ignore")
logging.getLogger("lightning").setLevel(logging.ERROR)
BASE = [
    "trainer.max_epochs=5",
    "model.width=2048",
    "callbacks.early_stopping=null",
    "++trainer.num_sanity_val_steps=0",
    "test=false",
    "trainer.enable_progress_bar=false",
    "callbacks.rich_progress_bar=null",
]
SHM = Path("/dev/shm/hyperlab_checkpoint_floor")
VARIANTS = {
    "no checkpoints": ["callbacks.model_checkpoint=null"],
    "checkpoints on disk (the run dir)": [],
    "checkpoints in RAM (/dev/shm, tmpfs)": [f"callbacks.model_checkpoint.dirpath={SHM}"],
}


def fit_seconds(overrides: list[str]) -> float:
    run_dir = tempfile.mkdtemp(dir=Path(__file__).resolve().parents[1] / "logs")
    cfg = compose([*BASE, *overrides], run_dir)
    datamodule, module = build_module(cfg)
    trainer = build_trainer(
        cfg.trainer,
        cfg.callbacks,
        cfg.logger,
        run_callbacks(OmegaConf.to_container(cfg, resolve=True), cfg.optimized_metric),
    )
    start = time.perf_counter()
    trainer.fit(module, datamodule=datamodule)
    seconds = time.perf_counter() - start
    shutil.rmtree(run_dir), shutil.rmtree(SHM, ignore_errors=True)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    (Path(__file__).resolve().parents[1] / "logs").mkdir(exist_ok=True)
    times = {name: [] for name in VARIANTS}
    for _ in range(args.repeats):
        for name, overrides in VARIANTS.items():
            times[name].append(fit_seconds(overrides))
    none = statistics.median(times["no checkpoints"])
    body = ["| variant | fit s (median) | min..max | added to fit time |", "|---|---|---|---|"]
    for name, seconds in times.items():
        median = statistics.median(seconds)
        body.append(
            f"| {name} | {median:.3f} | {min(seconds):.3f}..{max(seconds):.3f} | +{100 * (median / none - 1):.1f}% |"
        )
    publish("Checkpoint floor", f"python bench/checkpoint_floor.py --repeats {args.repeats}", body)


if __name__ == "__main__":
    main()
