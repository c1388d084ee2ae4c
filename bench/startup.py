"""Startup: how long `train.py` takes before it is useful, against importing torch and Lightning alone.

    python bench/startup.py [--repeats 9]

  import         `python -c "import torch, lightning"`: the floor any Lightning program pays;
  --help         `python train.py --help`;
  --cfg job      `python train.py --cfg job`;
  first step     `python train.py` until its first optimizer step returns (measured by a global optimizer
                 step hook that prints the time and exits the process), with logs in a temporary dir; the same
                 process also notes when `import torch, lightning` finished, so the time after it is measured
                 without the import's run-to-run noise.
Each command runs `--repeats` times, interleaved; medians. `--help` is hyperlab's own listing
(hyperlab.config.print_help), `--cfg job` Hydra's.
"""

import argparse
import os
import runpy
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def first_step_child(argv: list[str]) -> None:
    """Run train.py in this process; exit with the wall time at the end of the first optimizer step."""
    import lightning  # noqa: F401  (the import floor, timed in this process)
    from torch.optim.optimizer import register_optimizer_step_post_hook

    imported = time.time()

    def report(optimizer, args, kwargs):
        print(f"FIRST_STEP_AT {time.time():.6f} IMPORTED_AT {imported:.6f}", flush=True)
        os._exit(0)

    register_optimizer_step_post_hook(report)
    sys.argv = [str(ROOT / "train.py"), *argv]
    runpy.run_path(str(ROOT / "train.py"), run_name="__main__")


def wall(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
    return time.perf_counter() - start


AFTER_IMPORT: list[float] = []


def first_step() -> float:
    """Process start to the end of the first optimizer step; records the part after `import torch, lightning`
    (timed inside the same process, so the import's run-to-run noise drops out) in AFTER_IMPORT."""
    start = time.time()
    out = subprocess.run(
        [sys.executable, __file__, "--child", f"paths.log_dir={tempfile.mkdtemp()}"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    first, imported = (float(out.split(key)[1].split()[0]) for key in ("FIRST_STEP_AT ", "IMPORTED_AT "))
    AFTER_IMPORT.append(first - imported)
    return first - start


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        first_step_child(sys.argv[2:])
        return
    from report import publish

    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    python, train = sys.executable, str(ROOT / "train.py")
    commands = {
        "import torch, lightning": lambda: wall([python, "-c", "import torch, lightning"]),
        "train.py --help": lambda: wall([python, train, "--help"]),
        "train.py --cfg job": lambda: wall([python, train, "--cfg", "job"]),
        "train.py to its first optimizer step": first_step,
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(args.repeats):
        for name, measure in commands.items():
            times[name].append(measure())
    medians = {name: statistics.median(t) for name, t in times.items()}
    body = [f"Median of {args.repeats} interleaved runs of each command (wall seconds, process start to end).", ""]
    body += ["| command | median s | min..max |", "|---|---|---|"]
    body += [f"| {name} | {medians[name]:.2f} | {min(t):.2f}..{max(t):.2f} |" for name, t in times.items()]
    after = statistics.median(AFTER_IMPORT)
    body += [
        "",
        f"First optimizer step after `import torch, lightning` in the same process: **{after:.2f} s** median "
        f"({min(AFTER_IMPORT):.2f}..{max(AFTER_IMPORT):.2f}): the rest of the imports (scikit-learn, Hydra), "
        "composing and checking the config, loading and splitting the data, building model and Trainer, "
        "the sanity-check validation, the step itself.",
    ]
    publish("Startup", "python bench/startup.py", body)


if __name__ == "__main__":
    main()
