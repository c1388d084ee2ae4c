"""The job side of an Optuna study: open the shared storage and report each epoch to the job's trial.

The study sweeper (hyperlab.search.sweeper) asks a trial, then launches a job with `trial.storage`,
`trial.study_name`, `trial.number` and `trial.monitor` set; `train()` adds `ReportToTrial`, which reports the
monitored metric after every validation epoch and stops the job when the study's pruner says so.
"""

import math
from pathlib import Path

import lightning as L
import optuna
from hydra.utils import instantiate


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """A journal file (`path/to/study.journal`: one machine, no server) or an RDB URL (`sqlite:///...`,
    `postgresql://...`: many machines sharing one study)."""
    if "://" in url:
        return optuna.storages.RDBStorage(url)
    Path(url).parent.mkdir(parents=True, exist_ok=True)
    return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(url))


def load_trial(storage: str, study_name: str, number: int) -> optuna.Trial:
    """The sweeper's trial `number`, in a study that prunes with the pruner the sweeper was configured with."""
    storage = open_storage(storage)
    study = optuna.load_study(study_name=study_name, storage=storage)
    pruner_cfg = study.user_attrs.get("pruner")
    study.pruner = instantiate(pruner_cfg) if pruner_cfg else optuna.pruners.NopPruner()
    trial_id = study._storage.get_trial_id_from_study_id_trial_number(study._study_id, number)
    return optuna.Trial(study, trial_id)


class ReportToTrial(L.Callback):
    """Report `monitor` to the trial after each validation epoch; raise TrialPruned when the pruner says so.

    The exception ends `trainer.fit`; the sweeper records the trial as PRUNED with its last reported value.
    `steps`: what a report's step counts. `epoch`: the epoch index. `percent`: the percentage of the run's epochs
    done (1..100), for the first fold of a cross-validated trial: trials with 10 and 20 epochs (and a schedule
    over each run's length, like the one-cycle) are compared at the same fraction of their schedule, not at
    the same epoch, where the longer run is always behind.
    """

    def __init__(self, storage: str, study_name: str, number: int, monitor: str, steps: str = "epoch"):
        self.trial = load_trial(storage, study_name, number)
        self.monitor, self.steps = monitor, steps

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # only during fit: the validate() of the best checkpoint after fit is no new epoch
        if trainer.state.fn != "fit" or trainer.sanity_checking or self.monitor not in trainer.callback_metrics:
            return
        epoch, prune = trainer.current_epoch, False
        if trainer.is_global_zero:  # one report per epoch; under DDP every rank then stops together
            self.trial.report(float(trainer.callback_metrics[self.monitor]), step=self._step(epoch, trainer.max_epochs))
            prune = self.trial.should_prune()
            if prune:  # the budget this trial spent, for the report (metrics.json is never written)
                self.trial.set_user_attr("epochs", epoch + 1)
        if trainer.strategy.broadcast(prune, src=0):
            raise optuna.TrialPruned(f"trial {self.trial.number} pruned after epoch {epoch}")

    def _step(self, epoch: int, max_epochs: int | None) -> int:
        if self.steps == "percent" and max_epochs and max_epochs > 0:
            return math.ceil(100 * (epoch + 1) / max_epochs)
        return epoch


FOLDS_FROM = 100  # the step after fold k >= 1 is 100 + k: after fold 0's reports at 1..100 % of its epochs


class FoldReports:
    """A cross-validated trial's reports after each fold. Fold 0 reports every epoch itself (ReportToTrial, steps
    `percent`: 1..100), so a hopeless trial stops within its first fold; after fold k >= 1 the mean of `monitor`
    over folds 0..k is reported as step 100 + k, so a trial still worse after a few folds is not given the
    rest. Raises TrialPruned when the pruner says so, with the epochs spent kept in the trial's `epochs`."""

    def __init__(self, storage: str, study_name: str, number: int, monitor: str, steps: str = "percent"):
        # `steps` comes with the trial node (ReportToTrial's); fold reports always step as FOLDS_FROM + k
        self.trial, self.monitor = load_trial(storage, study_name, number), monitor

    def report(self, folds: list[dict]) -> None:
        """`folds`: the metrics of the folds trained so far."""
        k = len(folds) - 1
        if k == 0:  # reported epoch by epoch
            return
        self.trial.report(sum(f[self.monitor] for f in folds) / len(folds), step=FOLDS_FROM + k)
        if self.trial.should_prune():
            self.trial.set_user_attr("epochs", sum(f["trainer/epoch"] for f in folds))
            raise optuna.TrialPruned(f"trial {self.trial.number} pruned after fold {k}")
