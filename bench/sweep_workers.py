"""Sweep throughput: 8 short trials of one study with 1 worker vs 2 workers on this machine.

    python bench/sweep_workers.py        # prints the figures and writes them into bench/results.md

Each configuration runs `python train.py -m hparams_search=random` (3 epochs of digits per trial) into a
fresh study; 2 workers are two processes of the same command sharing the study, 1 torch thread each.
The 1-worker run is repeated with 1 and with 2 torch threads, so the speed-up is not an artefact of threads.
"""

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from report import publish

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
    body = [f"{N_TRIALS} trials of `hparams_search=random`, 3 epochs each, wall seconds end to end.", ""]
    body += ["| configuration | wall s | speed-up |", "|---|---|---|"]
    body += [f"| {name} | {seconds:.1f} | {base / seconds:.2f}x |" for name, seconds in results.items()]
    publish("Sweep throughput", "python bench/sweep_workers.py", body)


if __name__ == "__main__":
    main()
