"""OptunaSweep (hydra/sweeper=study): each job is one Optuna trial, asked and told through a persistent storage.

Why our own sweeper: hydra-optuna-sweeper 1.3 pins optuna<3 (its SQLite storage breaks under SQLAlchemy 2) and
only ever passes overrides to a job, so a job cannot report per-epoch values and nothing can be pruned.
On Optuna's ask/tell this sweeper gets, with little code:
- resume: the study lives in a storage (default `<sweep dir>/study.journal`); re-running the same command
  runs only the trials still missing to reach `n_trials`;
- no lost trials: a trial left RUNNING by a dead process of this machine is marked FAIL and its parameters are
  enqueued again;
- failure tolerance: a job that raises, or ends with a NaN/inf objective, is recorded FAIL with its error and the
  sweep goes on, until more than `max_failures` trials of this invocation have failed;
- pruning: each job reports its monitored metric per epoch to its trial (`hyperlab.training.trial.ReportToTrial`);
- multi-objective: `objectives` are metrics.json keys (the run-output contract), one direction each;
- parallel workers: processes running the same command share the study; a file lock makes "count the trials,
  then ask one" atomic, so together they finish exactly `n_trials`;
- conditional search spaces: `conditional: {"model=cnn": {model.channels: choice(...)}}` samples a parameter only
  in trials that chose that option (Optuna's define-by-run; TPE with `multivariate` and `group` models them);
- model selection: with `selection` set, the winner is chosen by a stated rule and refit on train + val when the
  study ends (hyperlab.search.select, hyperlab.search.refit); `nested_folds: K` wraps the whole search in K outer folds.
"""

import fcntl
import functools
import json
import logging
import math
import os
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import optuna
import sqlalchemy
from hydra.core.utils import JobReturn, JobStatus
from hydra.plugins.sweeper import Sweeper
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState

from hyperlab import console
from hyperlab.search import families, nested
from hyperlab.search.space import (
    SweepError,
    ask,
    conditional_space,
    enqueue_every_option,
    grid,
    override_key,
    quoted,
    search_space,
)
from hyperlab.training.trial import open_storage

log = logging.getLogger(__name__)
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
WORKER = f"{socket.gethostname()}:{os.getpid()}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _built(key: str, node: DictConfig):
    """An Optuna sampler or pruner from its node; a constructor's refusal (`n_startup_trials=-1`) names the key."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return instantiate(node)
    except Exception as error:  # Hydra wraps the constructor's ValueError/TypeError in an InstantiationException
        cause = error.__cause__ or error
        raise SweepError(f"{key}: {type(cause).__name__}: {cause}") from error


class OptunaSweep(Sweeper):
    def __init__(
        self,
        study_name,
        storage,
        n_trials,
        objectives,
        directions,
        sampler,
        pruner,
        max_failures,
        params,
        torch_threads=None,
        conditional=None,
        selection=None,
        nested_folds=None,
    ):
        # the settings were checked by the plugin (hyperlab.config.sweep_rules.check_sweeper) before optuna loaded
        self.study_name, self.storage_url, self.n_trials = study_name, storage, n_trials
        self.objectives, self.directions = list(objectives), list(directions)
        self.sampler_cfg, self.pruner_cfg = sampler, pruner
        self.pruner = _built("hydra.sweeper.pruner", pruner) if pruner else optuna.pruners.NopPruner()
        if sampler is not None:  # built again for each ask (see _sampler); built once here so a bad argument fails now
            _built("hydra.sweeper.sampler", sampler)
        self.max_failures = max_failures
        self.params = {str(k): str(v) for k, v in (params or {}).items()}
        self.conditional = {str(w): {str(k): str(v) for k, v in p.items()} for w, p in (conditional or {}).items()}
        self.torch_threads = torch_threads
        self.selection, self.nested_folds = selection, nested_folds

    def setup(self, *, hydra_context, task_function, config: DictConfig) -> None:
        from hydra.core.plugins import Plugins

        self.hydra_context, self.config = hydra_context, config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: list[str]) -> list[JobReturn]:
        if self.torch_threads:  # several workers on one machine: share its cores instead of oversubscribing
            import torch

            torch.set_num_threads(self.torch_threads)
        space, fixed = search_space([f"{k}={v}" for k, v in self.params.items()] + list(arguments))
        space, left_out = self._families_that_take_the_data(space, fixed, arguments)
        conditions = conditional_space(self.conditional, space)
        if conditions and self._is_grid:
            raise SweepError("hydra.sweeper.conditional: GridSampler enumerates a fixed grid; use TPESampler")
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        if self.nested_folds:
            return self._nested(sweep_dir)
        storage_url = self.storage_url or str(sweep_dir / "study.journal")
        with self._lock(sweep_dir):  # workers starting together must not both create the schema or the study
            study = self._study(storage_url)
            if not study.get_trials(deepcopy=False):
                enqueue_every_option(study, space, conditions)
            study.set_user_attr("families_left_out", left_out)  # the report says what was never tried
        n_trials = (
            min(self.n_trials, math.prod(len(v) for v in grid(space).values())) if self._is_grid else self.n_trials
        )
        returns, failures = [], 0
        self._say_if_nothing_to_run(study, n_trials)
        while True:
            with self._lock(sweep_dir):
                self._recover_dead_workers(study)
                states = [t.state for t in study.get_trials(deepcopy=False)]
                if sum(s in FINISHED for s in states) + states.count(TrialState.RUNNING) >= n_trials:
                    break
                if self.sampler_cfg is not None:  # seeded by where the study stands: see _sampler
                    study.sampler = self._sampler(space, len(states))
                trial = ask(study, space, conditions)
                trial.set_user_attr("worker", WORKER)
            ret = self._run(trial, fixed, storage_url)
            returns.append(ret)
            state, values, error = self._outcome(ret)
            if error:
                trial.set_user_attr("error", error)
            self._tell(study, trial, values, state)
            if state == TrialState.FAIL:
                failures += 1
                log.warning(f"trial {trial.number} FAILED: {error}")
                if failures > self.max_failures:  # the study keeps every trial: re-running the command resumes
                    raise SystemExit(
                        f"error: {failures} trials failed in this sweep, more than "
                        f"hydra.sweeper.max_failures={self.max_failures}; last error: {error}"
                    )
        self._write_summary(study, sweep_dir)
        if self.selection:
            with self._lock(sweep_dir):  # workers finishing together: one refits, the others find it done
                if study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
                    log.info("other workers are still running trials: the last one to finish selects and refits")
                else:
                    self._select(sweep_dir)
        return returns

    def _families_that_take_the_data(self, space: dict, fixed: list[str], arguments: list[str]) -> tuple[dict, dict]:
        """`model: choice(...)` narrowed to the families whose networks take the data's input (search.families),
        and what was left out: {"input_shape": [...], "families": {family: why}}. A family the user named on the
        command line that cannot take it is refused instead, as bad input is, before the sweep dir exists."""
        choice = space.get("model")
        if not isinstance(choice, CategoricalDistribution):
            return space, {}
        loader = self.hydra_context.config_loader
        shape, refused = families.refusals(
            list(choice.choices), lambda option: loader.load_sweep_config(self.config, [*fixed, f"model={option}"])
        )
        left_out = {option: why for option, why in refused.items() if why}
        if not left_out:
            return space, {}
        kept = [option for option in choice.choices if not refused[str(option)]]
        named = [o for o in self.config.hydra.overrides.hydra if o.startswith("hydra.sweeper.params.model=")]
        named += [a for a in arguments if a.partition("=")[0] == "model"]
        if named or not kept:
            can = f" (families that can take it: {', '.join(map(str, kept))})" if kept else ""
            raise SweepError(f"{(named or ['hydra.sweeper.params.model'])[0]}: {next(iter(left_out.values()))}{can}")
        console.say(
            f"model families left out: {', '.join(left_out)} cannot take this data's inputs of shape {shape}; "
            f"the search tries {', '.join(map(str, kept))}"
        )
        return {**space, "model": CategoricalDistribution(kept)}, {"input_shape": list(shape), "families": left_out}

    def _say_if_nothing_to_run(self, study: optuna.Study, n_trials: int) -> None:
        """Re-running a finished study's command runs no trial: documented (docs/sweeps.md) as the way to report it
        again, so it exits 0, and says so rather than looking like a sweep that silently did nothing."""
        finished = len(study.get_trials(deepcopy=False, states=FINISHED))
        if finished >= n_trials:
            console.say(
                f"study {self.study_name} already has {finished} finished trials (hydra.sweeper.n_trials={n_trials}): "
                "no trial to run; its report again. Raise hydra.sweeper.n_trials to run more."
            )

    def _select(self, sweep_dir: Path) -> None:
        """The selection rule and the refit (hyperlab.search.select --refit), in a process of its own: it composes the
        winner's config with Hydra's compose API, which the running Hydra app cannot host. A refit already made
        is kept: `python -m hyperlab.select SWEEP_DIR --refit force` redoes it."""
        refit = "missing" if self.selection.get("refit", True) else "no"
        command = [sys.executable, "-m", "hyperlab.select", str(sweep_dir), "--refit", refit]
        if subprocess.run(command).returncode != 0:
            raise SystemExit(f"error: the selection or refit of {sweep_dir} failed (command: {' '.join(command)})")

    def _nested(self, sweep_dir: Path) -> list[JobReturn]:
        nested.run_outer_folds(self.nested_folds, sweep_dir, self.study_name)
        console.say(nested.summary(sweep_dir, self.nested_folds))
        return []

    @property
    def _is_grid(self) -> bool:
        return self.sampler_cfg is not None and str(self.sampler_cfg.get("_target_")).endswith("GridSampler")

    def _study(self, storage_url: str, attempts: int = 5) -> optuna.Study:
        for attempt in range(attempts):  # workers on other machines may be creating the same tables right now
            try:
                return self._create_study(storage_url)
            except sqlalchemy.exc.SQLAlchemyError:
                if attempt == attempts - 1:
                    raise
                time.sleep(1 + attempt)

    def _create_study(self, storage_url: str) -> optuna.Study:
        study = optuna.create_study(
            study_name=self.study_name,
            storage=open_storage(storage_url),
            pruner=self.pruner,
            directions=self.directions,
            load_if_exists=True,
        )
        # pruners are not kept in a storage: the study carries its pruner's config for every worker's jobs
        study.set_user_attr(
            "pruner", OmegaConf.to_container(self.pruner_cfg, resolve=True) if self.pruner_cfg else None
        )
        return study

    def _sampler(self, space: dict, n_existing: int) -> optuna.samplers.BaseSampler:
        """A sampler seeded with `seed + trials so far`, built for each ask. A sampler seeded once would replay its
        first draws in a resumed study, and two workers started together would draw the same points; samplers
        read the study's history from the storage, so a fresh one per ask loses nothing."""
        cfg = OmegaConf.to_container(self.sampler_cfg, resolve=True)
        # not GridSampler: its seed shuffles grid ids -> points, which must stay the same for the whole study
        # (it finds the unvisited points in the storage)
        if cfg.get("seed") is not None and not self._is_grid:
            cfg["seed"] += n_existing
        with warnings.catch_warnings():  # TPE's `multivariate` and `group` (conditional spaces) are "experimental"
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            sampler = instantiate(cfg)
        return sampler(search_space=grid(space)) if isinstance(sampler, functools.partial) else sampler

    @staticmethod
    def _tell(study: optuna.Study, trial: optuna.Trial, values, state: TrialState) -> None:
        try:
            study.tell(trial, values, state=state)
        except RuntimeError as error:
            # GridSampler signals an exhausted grid with study.stop(), which raises outside study.optimize().
            # tell() stores the trial in a `finally` first, and the loop already stops at the grid's size.
            if "Study.stop" not in str(error):
                raise

    @staticmethod
    @contextmanager
    def _lock(sweep_dir: Path) -> Iterator[None]:
        with open(sweep_dir / ".study.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    @staticmethod
    def _recover_dead_workers(study: optuna.Study) -> None:
        """A RUNNING trial whose worker process on this host is gone was killed: FAIL it, enqueue its params."""
        host = socket.gethostname()
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            worker_host, _, pid = str(trial.user_attrs.get("worker", "")).rpartition(":")
            if worker_host == host and pid.isdigit() and not _pid_alive(int(pid)):
                study._storage.set_trial_user_attr(trial._trial_id, "error", f"worker {host}:{pid} died")
                study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
                study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})
                log.warning(f"trial {trial.number} was left RUNNING by a dead worker: FAILED, parameters enqueued")

    def _run(self, trial: optuna.Trial, fixed: list[str], storage_url: str) -> JobReturn:
        overrides = [*fixed, *(f"{override_key(k)}={quoted(v)}" for k, v in trial.params.items())]
        if len(self.objectives) == 1:  # per-epoch reports (and so pruning) exist for one objective only
            overrides += [
                f"trial.storage={quoted(storage_url)}",
                f"trial.study_name={quoted(self.study_name)}",
                f"trial.number={trial.number}",
                f"trial.monitor={quoted(self.objectives[0])}",
            ]
        (ret,) = self.launcher.launch([overrides], initial_job_idx=trial.number)
        return ret

    def _outcome(self, ret: JobReturn) -> tuple[TrialState, list[float] | None, str | None]:
        if ret.status != JobStatus.COMPLETED:
            error = ret._return_value
            if isinstance(error, optuna.TrialPruned):
                return TrialState.PRUNED, None, None
            return TrialState.FAIL, None, f"{type(error).__name__}: {error}"
        job_dir = Path(ret.hydra_cfg.hydra.runtime.output_dir)
        metrics_path = job_dir / "metrics.json"
        if not metrics_path.is_file():
            return TrialState.FAIL, None, f"no metrics.json in {job_dir}"
        metrics = json.loads(metrics_path.read_text())
        missing = [key for key in self.objectives if key not in metrics]
        if missing:
            return TrialState.FAIL, None, f"objective(s) {missing} not in metrics.json"
        values = [metrics[key] for key in self.objectives]
        if any(v is None or not math.isfinite(v) for v in values):
            return TrialState.FAIL, None, f"non-finite objective {dict(zip(self.objectives, values, strict=True))}"
        return TrialState.COMPLETE, values, None

    def _write_summary(self, study: optuna.Study, sweep_dir: Path) -> None:
        """best.yaml: the best trial's parameters and values (every Pareto-optimal trial if multi-objective)."""
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if not complete:
            return
        best = study.best_trials
        summary = {
            "study_name": self.study_name,
            "objectives": dict(zip(self.objectives, self.directions, strict=True)),
            "trials": {s.name: sum(t.state == s for t in study.get_trials(deepcopy=False)) for s in TrialState},
            "best": [
                {"number": t.number, "values": t.values, "params": {override_key(k): v for k, v in t.params.items()}}
                for t in best
            ],
        }
        OmegaConf.save(OmegaConf.create(summary), sweep_dir / "best.yaml")
        best_metrics = sweep_dir / str(best[0].number) / "metrics.json"
        job_metrics = json.loads(best_metrics.read_text()) if best_metrics.is_file() else {}
        console.say(
            console.sweep_summary(sweep_dir, summary["trials"], summary["best"], summary["objectives"], job_metrics)
        )
