"""The job side of an Optuna study: open the shared storage and report each epoch to the job's trial.

The study sweeper (hyperlab.search.sweeper) asks a trial, then launches a job with `trial.storage`,
`trial.study_name`, `trial.number` and `trial.monitor` set; `train()` adds `ReportToTrial`, which reports the
monitored metric after every validation epoch and stops the job when the study's pruner says so.
"""

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
    """

    def __init__(self, storage: str, study_name: str, number: int, monitor: str):
        self.trial = load_trial(storage, study_name, number)
        self.monitor = monitor

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # only during fit: the validate() of the best checkpoint after fit is no new epoch
        if trainer.state.fn != "fit" or trainer.sanity_checking or self.monitor not in trainer.callback_metrics:
            return
        epoch, prune = trainer.current_epoch, False
        if trainer.is_global_zero:  # one report per epoch; under DDP every rank then stops together
            self.trial.report(float(trainer.callback_metrics[self.monitor]), step=epoch)
            prune = self.trial.should_prune()
        if trainer.strategy.broadcast(prune, src=0):
            raise optuna.TrialPruned(f"trial {self.trial.number} pruned after epoch {epoch}")


class FoldReports:
    """A cross-validated trial's reports: after fold k, the mean of `monitor` over folds 0..k as step k; raises
    TrialPruned when the pruner says so. Folds are the fidelity: a trial that is clearly worse after one or two
    folds is not given the rest (successive halving over folds instead of over epochs)."""

    def __init__(self, storage: str, study_name: str, number: int, monitor: str):
        self.trial, self.monitor = load_trial(storage, study_name, number), monitor

    def report(self, folds: list[dict]) -> None:
        """`folds`: the metrics of the folds trained so far."""
        step = len(folds) - 1
        self.trial.report(sum(f[self.monitor] for f in folds) / len(folds), step=step)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"trial {self.trial.number} pruned after fold {step}")
