"""What checkpoints cost a fit, against the floor a plain write of the same bytes sets.

    python bench/checkpoint_floor.py [--repeats 5]

1. Every save written (write_every_s=0): model.width=2048, 5 epochs, a 50 MB checkpoint (weights + AdamW state)
   every epoch, train.py's default writer. No checkpoints (`callbacks.model_checkpoint=null`), checkpoints on the
   run's disk, and in /dev/shm (tmpfs: memory only, no block device, no writeback). If the tmpfs variant still
   costs far more than issue 13's 3% target, the cost is that of producing 50 MB per epoch on two cores.
2. The default run (MLP width 256, digits, 20 epochs, saves held and written every 30 s and at the end): no
   checkpoints, the default, and every save written; the floor is one plain `write` of each file the default run
   leaves (the best checkpoint and last.ckpt, a hard link when they are the same state) as a share of the fit
   without checkpoints. Issue 32's target: the default within 5 points of that floor.
Variants interleaved, `--repeats` rounds (each round starts at the next variant), medians of fit seconds; and,
beside each, the seconds spent inside the checkpoint callback's hooks (its saves, the state dump and copy, the
writes) as a share of the fit without checkpoints: the same cost read without the noise of comparing two fits.
"""

import argparse
import gc
import logging
import shutil
import statistics
import tempfile
import time
import warnings
from pathlib import Path

from report import Clock, publish, run_objects

warnings.filterwarnings("ignore")
logging.getLogger("lightning").setLevel(logging.ERROR)
COMMON = ["callbacks.early_stopping=null", "++trainer.num_sanity_val_steps=0", "test=false"]
NO_BAR = ["trainer.enable_progress_bar=false", "callbacks.rich_progress_bar=null"]
WIDE = [*COMMON, *NO_BAR, "trainer.max_epochs=5", "model.width=2048", "callbacks.model_checkpoint.write_every_s=0"]
DEFAULT = [*COMMON, "trainer.max_epochs=20"]  # bench/step_throughput.py's `hyperlab` variant of the default run
SHM = Path("/dev/shm/hyperlab_checkpoint_floor")
SETTINGS = {
    "every save written: model.width=2048, 5 epochs, a 50 MB checkpoint every epoch": {
        "no checkpoints": [*WIDE, "callbacks.model_checkpoint=null"],
        "checkpoints on disk (the run dir)": WIDE,
        "checkpoints in RAM (/dev/shm, tmpfs)": [*WIDE, f"callbacks.model_checkpoint.dirpath={SHM}"],
    },
    "the default run: MLP width 256, 20 epochs, saves held (write_every_s=30)": {
        "no checkpoints": [*DEFAULT, "callbacks.model_checkpoint=null"],
        "default (held, written every 30 s and at the end)": DEFAULT,
        "every save written (write_every_s=0)": [*DEFAULT, "callbacks.model_checkpoint.write_every_s=0"],
    },
}


def files_left(run_dir: Path) -> list[int]:
    """The sizes of the checkpoint files a run leaves, a hard-linked file once."""
    inodes = {p.stat().st_ino: p.stat().st_size for p in run_dir.rglob("*.ckpt")}
    return sorted(inodes.values())


def fit_seconds(overrides: list[str]) -> tuple[float, list[int], float]:
    """The fit's wall seconds, the sizes of the checkpoint files it left, and its seconds inside checkpointing."""
    run_dir = tempfile.mkdtemp(dir=Path(__file__).resolve().parents[1] / "logs")
    datamodule, module, trainer = run_objects(overrides, run_dir)
    clock = Clock()  # what checkpoints cost, read from this fit alone, without the noise of comparing two fits
    if trainer.checkpoint_callback:
        clock.wrap_callback("checkpoints", trainer.checkpoint_callback)
    gc.collect()  # each fit starts with the same garbage: none
    start = time.perf_counter()
    trainer.fit(module, datamodule=datamodule)
    seconds = time.perf_counter() - start
    sizes = files_left(Path(run_dir))
    shutil.rmtree(run_dir), shutil.rmtree(SHM, ignore_errors=True)
    return seconds, sizes, clock.spent.get("checkpoints", 0.0)


def plain_writes(sizes: list[int], repeats: int = 7) -> float:
    """Median seconds of one plain `write` per file of these sizes, into the same file system as the runs."""
    payloads = [bytearray(size) for size in sizes]
    seconds = []
    with tempfile.TemporaryDirectory(dir=Path(__file__).resolve().parents[1] / "logs") as folder:
        for _ in range(repeats):
            start = time.perf_counter()
            for index, payload in enumerate(payloads):
                with open(f"{folder}/{index}.bin", "wb") as file:
                    file.write(payload)
            seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def setting_rows(title: str, variants: dict, repeats: int) -> list[str]:
    times, sizes, inside = {name: [] for name in variants}, {}, {name: [] for name in variants}
    names = list(variants)
    for round_ in range(repeats):
        for name in names[round_ % len(names) :] + names[: round_ % len(names)]:  # each variant in each place
            seconds, sizes[name], spent = fit_seconds(variants[name])
            times[name].append(seconds)
            inside[name].append(spent)
    none = statistics.median(times["no checkpoints"])
    body = [
        f"### {title}",
        "",
        "| variant | fit s (median) | min..max | added to fit time | inside the checkpoint callback |",
        "|---|---|---|---|---|",
    ]
    added, share = {}, {}
    for name, seconds in times.items():
        median = statistics.median(seconds)
        added[name] = 100 * (median / none - 1)
        share[name] = 100 * statistics.median(inside[name]) / none
        body.append(
            f"| {name} | {median:.3f} | {min(seconds):.3f}..{max(seconds):.3f} | {added[name]:+.1f}% "
            f"| {share[name]:.1f}% |"
        )
    default = "default (held, written every 30 s and at the end)"
    if default in variants:
        left = sizes[default]
        floor = 100 * plain_writes(left) / none
        gap, gap_inside = added[default] - floor, share[default] - floor
        body += [
            "",
            f"Floor: one plain `write` of each file the default run leaves ({len(left)}: "
            f"{', '.join(f'{size / 2**20:.2f} MB' for size in left)}) takes {floor:.1f}% of the fit without "
            f"checkpoints. The default adds {added[default]:+.1f}% to the fit's median ({gap:.1f} points above the "
            f"floor) and spends {share[default]:.1f}% inside the checkpoint callback ({gap_inside:.1f} points above "
            f"it). Target <= 5 points: {'met' if gap <= 5 else 'MISSED'} by the fit times, "
            f"{'met' if gap_inside <= 5 else 'MISSED'} by the time inside.",
        ]
    return [*body, ""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    (Path(__file__).resolve().parents[1] / "logs").mkdir(exist_ok=True)
    body = [f"Variants of a setting interleaved, {args.repeats} rounds (rotated), medians.", ""]
    for title, variants in SETTINGS.items():
        body += setting_rows(title, variants, args.repeats)
    publish("Checkpoint floor", f"python bench/checkpoint_floor.py --repeats {args.repeats}", body)


if __name__ == "__main__":
    main()
