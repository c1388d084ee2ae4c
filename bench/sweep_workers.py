"""Sweep throughput: 8 trials of one study with 1 worker vs 2 workers on this machine, short (3 epochs) and
longer (20 epochs) trials.

    python bench/sweep_workers.py        # prints the figures and writes them into bench/results.md

Each configuration runs `python train.py -m hparams_search=random` (digits trials) into a
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


def run_study(workers: int, threads: int, epochs: int) -> tuple[float, float]:
    log_dir = tempfile.mkdtemp(prefix="hyperlab-bench-")
    command = [
        sys.executable,
        "train.py",
        "-m",
        "hparams_search=random",
        f"hydra.sweeper.n_trials={N_TRIALS}",
        f"trainer.max_epochs={epochs}",
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
    return time.perf_counter() - start, trial_phase_s(Path(log_dir))


def trial_phase_s(log_dir: Path) -> float:
    """From the first trial's start to the last trial's end, as the study's storage recorded them: the sweep
    without the workers' start-up (imports)."""
    import optuna

    from hyperlab.training.trial import open_storage

    journal = next(log_dir.glob("train/studies/*/study.journal"))
    trials = optuna.load_study(study_name=journal.parent.name, storage=open_storage(str(journal))).trials
    return (max(t.datetime_complete for t in trials) - min(t.datetime_start for t in trials)).total_seconds()


def main() -> None:
    body = [
        f"{N_TRIALS} trials of `hparams_search=random`. End to end: wall seconds of the whole command, imports "
        "included (each worker process pays them once); trials: first trial start to last trial end, from the "
        "study's storage.",
        "",
        "| epochs per trial | configuration | end to end s | speed-up | trials s | speed-up |",
        "|---|---|---|---|---|---|",
    ]
    for epochs in (3, 20):
        results = {
            "1 worker, 2 threads": run_study(1, 2, epochs),
            "1 worker, 1 thread": run_study(1, 1, epochs),
            "2 workers, 1 thread each": run_study(2, 1, epochs),
        }
        wall0, trials0 = results["1 worker, 2 threads"]
        body += [
            f"| {epochs} | {name} | {wall:.1f} | {wall0 / wall:.2f}x | {trials:.1f} | {trials0 / trials:.2f}x |"
            for name, (wall, trials) in results.items()
        ]
    publish("Sweep throughput", "python bench/sweep_workers.py", body)


if __name__ == "__main__":
    main()
