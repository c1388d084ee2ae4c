"""Sweep throughput: 8 short trials of one study with 1 worker vs 2 workers on this machine.

    python bench/sweep_workers.py        # prints the figures and appends them to bench/results.md

Each configuration runs `python train.py -m hparams_search=random` (3 epochs of digits per trial) into a
fresh study; 2 workers are two processes of the same command sharing the study, 1 torch thread each.
The 1-worker run is repeated with 1 and with 2 torch threads, so the speed-up is not an artefact of threads.
"""

import platform
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
N_TRIALS = 8


def run_study(workers: int, threads: int) -> float:
    log_dir = tempfile.mkdtemp(prefix="hyperlab-bench-")
    command = [
        sys.executable,
        "train.py",
        "-m",
        "hparams_search=random",
        f"hydra.sweeper.n_trials={N_TRIALS}",
        "trainer.max_epochs=3",
        "callbacks.rich_progress_bar=null",
        f"hydra.sweeper.torch_threads={threads}",
        f"paths.log_dir={log_dir}",
    ]
    start = time.perf_counter()
    procs = [
        subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(workers)
    ]
    if any(p.wait() != 0 for p in procs):
        raise SystemExit(f"a worker failed: {' '.join(command)}")
    return time.perf_counter() - start


def main() -> None:
    results = {
        "1 worker, 2 threads": run_study(1, 2),
        "1 worker, 1 thread": run_study(1, 1),
        "2 workers, 1 thread each": run_study(2, 1),
    }
    base = results["1 worker, 2 threads"]
    lines = [
        f"## Sweep throughput ({N_TRIALS} trials, 3 epochs each), {date.today()}, {platform.machine()} "
        f"with {__import__('os').cpu_count()} cores",
        "Command: `python bench/sweep_workers.py`",
        "",
        "| configuration | wall s | speed-up |",
        "|---|---|---|",
    ]
    lines += [f"| {name} | {seconds:.1f} | {base / seconds:.2f}x |" for name, seconds in results.items()]
    text = "\n".join(lines) + "\n"
    print(text)
    with open(ROOT / "bench" / "results.md", "a") as f:
        f.write("\n" + text)


if __name__ == "__main__":
    main()
