"""What a run prints: Lightning's console without its noise, and the summary every run and sweep ends with.

Only the standard library is imported here: the sweeper, which never loads torch, prints through it too.
"""

import logging
import os
import warnings
from pathlib import Path

# Lightning 2.6 advertises its cloud products on every run (logger_connector.py, callback_connector.py).
ADVERTISEMENT = "💡 Tip:"


class DropAdvertisementsAndRepeats(logging.Filter):
    """Drops Lightning's "💡 Tip" lines and any info line it has already printed in this process (the post-fit
    validate and test each announce restoring the same checkpoint). Warnings and errors always pass."""

    def __init__(self):
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING:
            return True
        message = record.getMessage()
        if message.startswith(ADVERTISEMENT) or message in self.seen:
            return False
        self.seen.add(message)
        return True


class LightningInfoToTheFileOnly(logging.Filter):
    """On the console handler (conf/hydra/default.yaml, job_logging): Lightning's info lines (`Seed set to 42`,
    `GPU available`, `Restoring states ...`) stay in the run's log file, so what a run prints is its own summary.
    Warnings and errors still print."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or not record.name.startswith("lightning")


def quiet_lightning() -> None:
    """Called once when hyperlab.train loads Lightning."""
    # `import lightning` gives the "lightning" logger a console handler of its own; under Hydra the root logger
    # already prints (and writes <run>/<task_name>.log), so without this every Lightning line appears twice.
    if logging.getLogger().handlers:
        logging.getLogger("lightning").handlers.clear()
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, DropAdvertisementsAndRepeats) for f in logger.filters):
            logger.addFilter(DropAdvertisementsAndRepeats())
    # Lightning 2.6 with torch 2.13 warns on every run about a torch-internal deprecation it has not caught up with.
    warnings.filterwarnings("ignore", message=r".*LeafSpec.* is deprecated")
    # hyperlab's module logs its training metrics once an epoch (the running sums of training/supervised.py), so
    # Lightning's warning that an epoch has fewer batches than log_every_n_steps says nothing about them; on small
    # data every fold of every search trial printed it.
    warnings.filterwarnings("ignore", message=r".*smaller than the logging interval")


def shown(path: str | Path | None) -> str:
    """A path as a user would type it: relative to the working directory when under it."""
    if path is None:
        return "none"
    path = Path(path)
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _figure(metrics: dict, key: str) -> str:
    """`test/acc 0.9806`, or `mean ± std` for a cross-validated run."""
    std = metrics.get(f"{key}_std")
    return f"{key} {metrics[key]:.4f}" + (f" ± {std:.4f}" if isinstance(std, float) else "")


def _figures(metrics: dict, stage: str) -> list[str]:
    """Every scalar of a stage."""
    keys = sorted(k for k in metrics if k.startswith(f"{stage}/") and not k.endswith("_std"))
    return [
        _figure(metrics, k) for k in keys if isinstance(metrics[k], (int, float)) and not isinstance(metrics[k], bool)
    ]


def _wrapped(label: str, items: list[str], width: int = 80) -> list[str]:
    lines, line = [], f"  {label:<10}"
    for item in items:
        if len(line) + len(item) + 3 > width and line.strip() != label:
            lines.append(line.rstrip())
            line = " " * 12
        line += item + "   "
    lines.append(line.rstrip())
    return lines


def run_summary(metrics: dict, output_dir: str | Path, optimized_metric: str | None) -> str:
    """What the run got and where it is: the optimized metric, test metrics, the scored checkpoint, the run dir
    and the command that evaluates it again."""
    folds = metrics.get("data/num_folds")
    lines = [f"Run finished in {metrics.get('time/train_s', 0):.1f} s of training: {shown(output_dir)}"]
    if optimized_metric and isinstance(metrics.get(optimized_metric), (int, float)):
        spread = f" over {folds} folds" if folds and isinstance(metrics.get(f"{optimized_metric}_std"), float) else ""
        lines.append(f"  {'optimized':<10}{_figure(metrics, optimized_metric)}{spread}")
    test = _figures(metrics, "test")
    lines += _wrapped("test", test) if test else []
    if folds:  # eval.py scores every fold's best checkpoint and their ensemble from the run dir
        lines.append(f"  {'evaluate':<10}python eval.py ckpt_path={shown(output_dir)}")
    else:
        best = metrics.get("ckpt/best")
        lines.append(f"  {'best ckpt':<10}{shown(best) if best else 'none kept (final weights scored)'}")
        if best:
            lines.append(f"  {'evaluate':<10}python eval.py ckpt_path={shown(best)}")
    return "\n".join(lines)


def sweep_summary(
    sweep_dir: Path, counts: dict[str, int], best: list[dict], objectives: dict[str, str], job_metrics: dict
) -> str:
    """How the sweep went (trials by state), its best trial (every Pareto-optimal one if several objectives), the
    best job's directory and checkpoint, and the commands that go on from there."""
    states = ", ".join(f"{n} {s.lower()}" for s, n in counts.items() if n)
    lines = [f"Sweep finished: {shown(sweep_dir)} ({sum(counts.values())} trials: {states})"]
    for trial in best[:5]:
        values = "  ".join(f"{key} {value:.4f}" for key, value in zip(objectives, trial["values"], strict=True))
        params = " ".join(f"{k}={f'{v:.4g}' if isinstance(v, float) else v}" for k, v in trial["params"].items())
        lines.append(f"  {'best':<10}trial {trial['number']}: {values}")
        lines += _wrapped("params", params.split(" ")) if params else []
    if len(best) > 5:
        lines.append(f"  ... {len(best) - 5} more Pareto-optimal trials in best.yaml")
    if best:
        job_dir = sweep_dir / str(best[0]["number"])
        lines.append(f"  {'job dir':<10}{shown(job_dir)}")
        if job_metrics.get("ckpt/best"):
            lines.append(f"  {'evaluate':<10}python eval.py ckpt_path={shown(job_metrics['ckpt/best'])}")
    lines.append(f"  {'report':<10}python -m hyperlab.select {shown(sweep_dir)}")
    return "\n".join(lines)


def say(text: str) -> None:
    """Print on stdout, once under DDP (rank 0), after whatever the progress bars left on the line."""
    if os.environ.get("LOCAL_RANK", "0") == "0" and os.environ.get("NODE_RANK", "0") == "0":
        print(text, flush=True)
