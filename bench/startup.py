"""Startup: how long `train.py` takes before it is useful, against importing torch and Lightning alone.

    python bench/startup.py [--repeats 5]

  import         `python -c "import torch, lightning"`: the floor any Lightning program pays;
  --help         `python train.py --help`;
  --cfg job      `python train.py --cfg job`;
  first step     `python train.py` until its first optimizer step returns (measured by a global optimizer
                 step hook that prints the time and exits the process), with logs in a temporary dir.
Each command runs `--repeats` times, interleaved; medians. "first step - import" is the cost of hyperlab's own
work (config, data, model, Trainer) on top of the import floor.
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
    from torch.optim.optimizer import register_optimizer_step_post_hook

    def report(optimizer, args, kwargs):
        print(f"FIRST_STEP_AT {time.time():.6f}", flush=True)
        os._exit(0)

    register_optimizer_step_post_hook(report)
    sys.argv = [str(ROOT / "train.py"), *argv]
    runpy.run_path(str(ROOT / "train.py"), run_name="__main__")


def wall(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
    return time.perf_counter() - start


def first_step() -> float:
    start = time.time()
    out = subprocess.run(
        [sys.executable, __file__, "--child", f"paths.log_dir={tempfile.mkdtemp()}"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return float(out.split("FIRST_STEP_AT ")[1].split()[0]) - start


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        first_step_child(sys.argv[2:])
        return
    from report import publish

    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
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
    overhead = medians["train.py to its first optimizer step"] - medians["import torch, lightning"]
    body += ["", f"First step - import: **{overhead:.2f} s** (hyperlab's config, data, model and Trainer set-up)."]
    publish("Startup", "python bench/startup.py", body)


if __name__ == "__main__":
    main()
