"""Cooldown branches of a warmup-stable-decay run (scheduler=wsd; Hägele et al. 2024): one stable run saved at
chosen steps, and from each save a branch that runs only the cooldown. K training lengths cost one stable run
plus K cooldowns instead of K runs from scratch.

    python train.py ... scheduler=wsd scheduler.decay_fraction=0 "scheduler.save_at=[400,800]" trainer.max_steps=800
    python train.py ... scheduler=wsd scheduler.decay_from=<run>/checkpoints/step_000400.ckpt trainer.max_steps=500
    python train.py ... scheduler=wsd "scheduler.budgets=[500,1000]"     # both, in one command (train_budgets)

A save must end an epoch: every data module here orders an epoch's batches from (seed, epoch), so a run resumed
at an epoch's end sees exactly the batches of the unbroken run, where one resumed mid-epoch would replay the
epoch's first batches.
"""

from collections.abc import Callable
from pathlib import Path

import lightning as L
from omegaconf import DictConfig

from hyperlab import runs
from hyperlab.config.schedule_rules import cooldown_start
from hyperlab.errors import ConfigError
from hyperlab.training.checkpoints import load_checkpoint, stored_config

# What a branch shares with the stable run it resumes: change any of these and it is another run's trajectory
RECIPE_KEYS = ("model", "optimizer", "data", "loss", "no_decay_bias_norm", "regularization", "seed")


def save_name(step: int) -> str:
    return f"step_{step:06d}.ckpt"


class SaveAtSteps(L.Callback):
    """A stable run's saves: `<dirpath>/step_NNNNNN.ckpt` at the end of the epoch that reaches each of `steps`.
    Before the first step it checks that each save, and each of `budgets` (the branches' last steps, which must
    validate and be scored at an epoch's end), ends an epoch."""

    def __init__(self, steps: list[int], dirpath: Path, budgets: list[int] | None = None):
        self.steps, self.dirpath, self.budgets = sorted(steps), Path(dirpath), list(budgets or ())

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        per_epoch = trainer.num_training_batches // trainer.accumulate_grad_batches
        for key, steps in (("scheduler.save_at", self.steps), ("scheduler.budgets", self.budgets)):
            unaligned = [step for step in steps if step % per_epoch]
            if unaligned:
                raise ConfigError(
                    f"{key}={unaligned}: each must end an epoch ({per_epoch} optimizer steps here), where a branch "
                    "resumed from it sees exactly the unbroken run's batches and a run ends validated; use multiples"
                )

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # where ModelCheckpoint saves its best-k files: a resume from there re-enters the epoch's end and sets the
        # next epoch's data order right; one saved in on_train_epoch_end resumes with the order of the epoch after
        # (Lightning counts that epoch as processed and sets epoch + 1 on the sampler: measured, see the test)
        if not trainer.sanity_checking and trainer.global_step in self.steps:
            trainer.save_checkpoint(self.dirpath / save_name(trainer.global_step))


def decay_start_of(decay_from: str, total_steps: int, warmup_steps: int) -> int:
    """The step a branch's cooldown starts at: that of the stable run's checkpoint it resumes."""
    step = load_checkpoint(decay_from, mmap=True)["global_step"]
    if not warmup_steps <= step < total_steps:
        raise ConfigError(
            f"scheduler.decay_from={decay_from!r} was saved at step {step}: the branch's cooldown runs from there to "
            f"the run's last step, so it needs trainer.max_steps > {step} (here {total_steps}) and "
            f"scheduler.warmup_steps <= {step} (here {warmup_steps})"
        )
    return step


def branch_checkpoint(decay_from: str | None, config: dict) -> str | None:
    """The checkpoint a cooldown branch resumes (`scheduler.decay_from`), checked to be a stable run of this same
    model and recipe (RECIPE_KEYS): resuming another run's optimizer state would train something else."""
    if decay_from is None:
        return None
    stored = stored_config(load_checkpoint(decay_from, mmap=True))
    scheduler = stored.get("scheduler") or {}
    if not str(scheduler.get("_target_", "")).endswith(".wsd") or scheduler.get("decay_fraction") != 0:
        raise ConfigError(
            f"scheduler.decay_from={decay_from!r} is not a stable run's checkpoint: it needs scheduler=wsd with "
            f"scheduler.decay_fraction=0 (it has {scheduler.get('_target_')}, "
            f"decay_fraction={scheduler.get('decay_fraction')})"
        )
    for key in RECIPE_KEYS:
        if stored.get(key) != config.get(key):
            raise ConfigError(
                f"scheduler.decay_from={decay_from!r} is a checkpoint of another run: its {key} differs from this "
                f"run's ({_first_difference(stored.get(key), config.get(key), key)})"
            )
    return decay_from


def _first_difference(there, here, key: str) -> str:
    if isinstance(there, dict) and isinstance(here, dict):
        for name in sorted(set(there) | set(here)):
            if there.get(name) != here.get(name):
                return _first_difference(there.get(name), here.get(name), f"{key}.{name}")
    return f"{key}={there!r} there, {here!r} here"


def train_budgets(scheduler: DictConfig, output_dir: Path, train_with: Callable[[dict], dict]) -> dict:
    """`scheduler.budgets=[T1, ..., TK]` optimizer steps: the stable run in `<run>/stable` (saved where each
    budget's cooldown starts), then one branch per budget in `<run>/budget_T`, each trained by `train_with(changes)`
    (this run's config with `changes`, dotted keys, set). The run's metrics are the largest budget's, each budget's
    under `budgets`, and `time/train_s` the sum over the stable run and every branch."""
    budgets = sorted(scheduler.budgets)
    starts = [cooldown_start(budget, scheduler.decay_fraction) for budget in budgets]
    stable_dir = output_dir / "stable"
    stable = train_with(_part(stable_dir, max(starts), decay_fraction=0.0, save_at=starts, test=False))
    branches = {}
    for budget, start in zip(budgets, starts, strict=True):
        decay_from = str(stable_dir / "checkpoints" / save_name(start))
        branches[budget] = train_with(
            _part(output_dir / f"budget_{budget}", budget, decay_from=decay_from, budgets=None)
        )
    metrics = dict(branches[budgets[-1]])
    metrics["budgets"] = {str(budget): _budget_figures(m) for budget, m in branches.items()}
    metrics["time/train_s"] = round(stable["time/train_s"] + sum(m["time/train_s"] for m in branches.values()), 3)
    runs.write_metrics(output_dir, metrics)
    return metrics


def _part(output_dir: Path, max_steps: int, test: bool | None = None, **scheduler) -> dict:
    """The changes that make the stable run or a branch of this run: `max_steps` long (epochs unbounded), its own
    run dir, no trial reports (the study is told the whole job's figure), no early stopping (each runs to its
    step), `scheduler` keys replaced. train() alone reads budgets: the stable run keeps them for SaveAtSteps."""
    output_dir.mkdir(parents=True, exist_ok=True)
    changes = {"paths.output_dir": str(output_dir), "trainer.max_steps": max_steps, "trainer.max_epochs": -1}
    changes.update({"trial.number": None, "callbacks.early_stopping": None})
    changes.update({f"scheduler.{key}": value for key, value in scheduler.items()})
    return changes if test is None else {**changes, "test": test}


def _budget_figures(metrics: dict) -> dict:
    kept = ("trainer/global_step", "time/train_s", "data/tokens_trained", "model/params", "model/flops")
    return {key: value for key, value in metrics.items() if key.startswith(("val/", "test/")) or key in kept}
