"""The study sweeper: trials counted in the storage after sweeps, resumes, failures, pruning, grids, Pareto."""

import socket
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from hyperlab.search.space import grid, quoted, search_space
from hyperlab.search.sweeper import OptunaSweep
from hyperlab.training.trial import open_storage
from tests.conftest import ROOT


def test_hydra_sweep_syntax_becomes_optuna_distributions():
    space, fixed = search_space(
        [
            "lr=tag(log, interval(1e-4, 1e-1))",
            "model.width=choice(64, 128)",
            "model.depth=range(1, 4)",
            "model.dropout=interval(0.0, 0.5)",
            "seed=3",
        ]
    )
    assert space == {
        "lr": FloatDistribution(1e-4, 1e-1, log=True),
        "model.width": CategoricalDistribution([64, 128]),
        "model.depth": IntDistribution(1, 3),
        "model.dropout": FloatDistribution(0.0, 0.5),
    }
    assert fixed == ["seed=3"]
    assert grid({"a": CategoricalDistribution(["x", "y"]), "b": IntDistribution(1, 3)}) == {
        "a": ["x", "y"],
        "b": [1, 2, 3],
    }


def test_grid_refuses_intervals():
    with pytest.raises(Exception, match="grid search needs discrete values: hydra.sweeper.params.lr is an interval"):
        grid(search_space(["lr=interval(0.1, 1.0)"])[0])


@pytest.mark.parametrize("value", [3e-4, 64, "adamw", "val/acc", "/tmp/a b/study.journal"])
def test_sampled_values_survive_the_override_parser(value):
    (override,) = OverridesParser.create().parse_overrides([f"key={quoted(value)}"])
    assert override.value() == value


def test_a_trial_left_running_by_a_dead_worker_is_failed_and_its_params_enqueued(tmp_path):
    study = optuna.create_study(study_name="s", storage=open_storage(str(tmp_path / "s.journal")))
    trial = study.ask({"lr": FloatDistribution(1e-4, 1e-1, log=True)})
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    trial.set_user_attr("worker", f"{socket.gethostname()}:{dead.pid}")
    alive = study.ask({"lr": FloatDistribution(1e-4, 1e-1, log=True)})
    alive.set_user_attr("worker", f"{socket.gethostname()}:{1}")  # pid 1 is alive: left alone
    OptunaSweep._recover_dead_workers(study)
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.RUNNING, TrialState.WAITING]
    assert "died" in trials[0].user_attrs["error"]
    retry = study.ask({"lr": FloatDistribution(1e-4, 1e-1, log=True)})  # the next ask takes the enqueued one
    assert (retry.number, retry.params) == (2, trials[0].params)


TINY = """# @package _global_
defaults:
  - override /hydra/sweeper: study
trainer:
  max_epochs: {epochs}
callbacks:
  early_stopping: null
  rich_progress_bar: null
model:
  width: 32
hydra:
  sweep:
    dir: ${{paths.log_dir}}/study
    subdir: ${{hydra.job.num}}
  sweeper:
    study_name: tiny
    n_trials: 3
    sampler:
      _target_: optuna.samplers.{sampler}
      seed: 0
    pruner: {pruner}
    params:
{params}
"""


def write_search(tmp_path, epochs=1, sampler="RandomSampler", pruner="null", params="      lr: choice(3e-3)"):
    conf = tmp_path / "conf" / "hparams_search"
    conf.mkdir(parents=True, exist_ok=True)
    (conf / "tiny.yaml").write_text(TINY.format(epochs=epochs, sampler=sampler, pruner=pruner, params=params))


def sweep_command(tmp_path, *args: str) -> list[str]:
    """`python train.py -m hparams_search=tiny ...` with the tiny search config and all logs under tmp_path."""
    return [
        sys.executable,
        str(ROOT / "train.py"),
        "-m",
        "hparams_search=tiny",
        f"hydra.searchpath=[file://{tmp_path / 'conf'}]",
        f"paths.log_dir={tmp_path / 'logs'}",
        *args,
    ]


def sweep(tmp_path, *args, **search) -> subprocess.CompletedProcess:
    write_search(tmp_path, **search)
    return subprocess.run(sweep_command(tmp_path, *args), cwd=ROOT, capture_output=True, text=True, timeout=600)


def start_workers(tmp_path, workers: int, *args: str) -> list[subprocess.Popen]:
    return [
        subprocess.Popen(
            sweep_command(tmp_path, *args), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        for _ in range(workers)
    ]


def trials(tmp_path) -> list[optuna.trial.FrozenTrial]:
    storage = open_storage(str(tmp_path / "logs" / "study" / "study.journal"))
    return optuna.load_study(study_name="tiny", storage=storage).get_trials()


@pytest.mark.slow
def test_rerunning_a_study_runs_only_the_missing_trials(tmp_path):
    params = "      lr: tag(log, interval(1e-3, 1e-2))\n      model.width: choice(16, 32, 64)"
    first = sweep(tmp_path, "hydra.sweeper.n_trials=2", params=params)
    assert first.returncode == 0, first.stderr[-3000:]
    assert [t.state for t in trials(tmp_path)] == [TrialState.COMPLETE] * 2
    second = sweep(tmp_path, "hydra.sweeper.n_trials=4", params=params)
    assert second.returncode == 0, second.stderr[-3000:]
    again = sweep(tmp_path, "hydra.sweeper.n_trials=4", params=params)  # nothing missing: no new trial
    assert again.returncode == 0
    done = trials(tmp_path)
    assert [t.number for t in done] == [0, 1, 2, 3] and all(t.state == TrialState.COMPLETE for t in done)
    assert len({t.params["lr"] for t in done}) == 4  # four distinct trials, none run twice
    study_dir = tmp_path / "logs" / "study"
    assert sorted(p.name for p in study_dir.iterdir() if (p / "metrics.json").exists()) == ["0", "1", "2", "3"]
    best = yaml.safe_load((study_dir / "best.yaml").read_text())
    assert best["trials"]["COMPLETE"] == 4
    assert best["best"][0]["values"][0] == max(t.value for t in done)
    # the sweep ends by saying what it found and where
    summary = second.stdout[second.stdout.rindex("Sweep finished") :]
    winner = best["best"][0]["number"]
    assert "(4 trials: 4 complete)" in summary and f"best      trial {winner}: val/acc " in summary
    assert f"job dir   {study_dir / str(winner)}" in summary
    assert "python eval.py ckpt_path=" in summary and f"python -m hyperlab.select {study_dir}" in summary


@pytest.mark.slow
def test_a_failing_trial_is_recorded_and_the_sweep_goes_on(tmp_path):
    params = "      model.activation: choice(relu, swish)"  # swish does not exist: that trial fails at build
    result = sweep(tmp_path, "hydra.sweeper.n_trials=2", "hydra.sweeper.max_failures=10", params=params)
    assert result.returncode == 0, result.stderr[-3000:]
    done = trials(tmp_path)
    failed = [t for t in done if t.state == TrialState.FAIL]
    assert [t.params["model.activation"] for t in failed] == ["swish"] * len(failed) and failed
    assert "model.activation='swish' is not one of" in failed[0].user_attrs["error"]
    assert sum(t.state == TrialState.COMPLETE for t in done) == 2


@pytest.mark.slow
def test_the_failure_budget_ends_the_sweep_with_a_clear_message(tmp_path):
    result = sweep(
        tmp_path,
        "hydra.sweeper.n_trials=3",
        "hydra.sweeper.max_failures=1",
        params="      model.activation: choice(swish)",
    )
    assert result.returncode == 1
    assert "error: 2 trials failed in this sweep, more than hydra.sweeper.max_failures=1" in result.stderr
    assert "Traceback" not in result.stderr
    assert [t.state for t in trials(tmp_path)] == [TrialState.FAIL] * 2  # kept in the study


@pytest.mark.slow
def test_a_bad_trial_is_pruned_before_max_epochs(tmp_path):
    pruner = "\n      _target_: optuna.pruners.MedianPruner\n      n_startup_trials: 2\n      n_warmup_steps: 0"
    good = sweep(
        tmp_path,
        "hydra.sweeper.n_trials=2",
        "optimizer=sgd",
        epochs=4,
        pruner=pruner,
        params="      lr: interval(0.04, 0.05)",
    )
    assert good.returncode == 0, good.stderr[-3000:]
    bad = sweep(
        tmp_path,
        "hydra.sweeper.n_trials=3",
        "optimizer=sgd",
        epochs=4,
        pruner=pruner,
        params="      lr: interval(1e-7, 2e-7)",
    )  # learns nothing: far below the median after epoch 1
    assert bad.returncode == 0, bad.stderr[-3000:]
    done = trials(tmp_path)
    assert [t.state for t in done] == [TrialState.COMPLETE, TrialState.COMPLETE, TrialState.PRUNED]
    assert [len(t.intermediate_values) for t in done] == [4, 4, 1]
    assert done[2].value == done[2].intermediate_values[0]  # recorded with its last reported value
    assert not (tmp_path / "logs" / "study" / "2" / "metrics.json").exists()


@pytest.mark.slow
def test_grid_runs_every_combination_exactly_once(tmp_path):
    result = sweep(
        tmp_path,
        "hydra.sweeper.n_trials=10",
        sampler="GridSampler\n      _partial_: true",
        params="      lr: choice(1e-3, 3e-3)\n      model.width: choice(16, 32)",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    done = trials(tmp_path)
    assert sorted((t.params["lr"], t.params["model.width"]) for t in done) == [
        (1e-3, 16),
        (1e-3, 32),
        (3e-3, 16),
        (3e-3, 32),
    ]


@pytest.mark.slow
def test_multi_objective_best_is_the_pareto_front(tmp_path):
    result = sweep(
        tmp_path,
        "hydra.sweeper.n_trials=4",
        "hydra.sweeper.objectives=[val/acc,model/params]",
        "hydra.sweeper.directions=[maximize,minimize]",
        params="      model.width: choice(4, 8, 64, 128)",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    done = [t for t in trials(tmp_path) if t.state == TrialState.COMPLETE]

    def dominated(t):
        return any(o.values[0] >= t.values[0] and o.values[1] <= t.values[1] and o.values != t.values for o in done)

    best = yaml.safe_load((tmp_path / "logs" / "study" / "best.yaml").read_text())["best"]
    assert sorted(b["number"] for b in best) == sorted(t.number for t in done if not dominated(t))


@pytest.mark.slow
def test_two_workers_on_one_study_finish_exactly_n_trials_without_duplicates(tmp_path):
    write_search(tmp_path, params="      lr: tag(log, interval(1e-3, 1e-2))")
    workers = start_workers(tmp_path, 2, "hydra.sweeper.n_trials=4")
    assert [w.wait(timeout=600) for w in workers] == [0, 0], [w.stderr.read()[-2000:] for w in workers]
    done = trials(tmp_path)
    assert [t.number for t in done] == [0, 1, 2, 3] and all(t.state == TrialState.COMPLETE for t in done)
    assert len({t.params["lr"] for t in done}) == 4
    assert len({t.user_attrs["worker"] for t in done}) == 2  # both workers took trials


def test_the_study_journal_opens_in_optuna_dashboard(tmp_path):
    import io
    import json

    import optuna_dashboard

    path = str(tmp_path / "study.journal")
    study = optuna.create_study(study_name="digits", storage=open_storage(path), direction="maximize")
    study.tell(study.ask({"lr": FloatDistribution(1e-4, 1e-1, log=True)}), 0.9)
    app = optuna_dashboard.wsgi(path)  # the dashboard's own storage guess: a file path is a journal
    status = []
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/api/studies",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": io.StringIO(),
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "wsgi.url_scheme": "http",
    }
    body = app(environ, lambda s, headers, exc_info=None: status.append(s))
    studies = json.loads(b"".join(body))["study_summaries"]
    assert status == ["200 OK"]
    assert [(s["study_name"], s["directions"]) for s in studies] == [("digits", ["maximize"])]


def test_the_slurm_launcher_config_composes_onto_submitit(tmp_path):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from tests.conftest import CONF

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = hydra_compose(
            "train",
            overrides=["hydra/launcher=slurm", "hparams_search=tpe", "hydra.launcher.partition=gpu"],
            return_hydra_config=True,
        )
    launcher = cfg.hydra.launcher
    assert launcher._target_ == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    assert (launcher.partition, launcher.gpus_per_node, launcher.timeout_min) == ("gpu", 1, 120)
    assert cfg.hydra.sweeper._target_ == "hydra_plugins.study_sweeper.sweeper.StudySweeper"


SEARCHES = sorted(p.stem for p in (Path(__file__).resolve().parents[1] / "conf" / "hparams_search").glob("*.yaml"))


@pytest.mark.parametrize("search", SEARCHES)
def test_every_search_config_builds_its_sweeper_space_sampler_and_pruner(search):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    from tests.conftest import CONF

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = hydra_compose("train", overrides=[f"hparams_search={search}"], return_hydra_config=True)
    settings = OmegaConf.to_container(cfg.hydra.sweeper, resolve=False)
    assert settings.pop("_target_") == "hydra_plugins.study_sweeper.sweeper.StudySweeper"
    settings.pop("_recursive_")
    settings["objectives"] = [cfg.optimized_metric if o == "${optimized_metric}" else o for o in settings["objectives"]]
    sweeper = OptunaSweep(**{k: OmegaConf.create(v) if isinstance(v, dict) else v for k, v in settings.items()})
    space, _ = search_space([f"{k}={v}" for k, v in sweeper.params.items()])
    assert space and isinstance(sweeper._sampler(space, 0), optuna.samplers.BaseSampler)
    assert isinstance(sweeper.pruner, optuna.pruners.BasePruner)


@pytest.mark.slow
def test_a_diverging_trial_is_failed_with_the_step_named(tmp_path):
    result = sweep(
        tmp_path,
        "hydra.sweeper.n_trials=1",
        "hydra.sweeper.max_failures=0",
        "optimizer=sgd",
        params="      lr: choice(1e12)",
    )  # the loss is NaN within the first steps
    assert result.returncode == 1 and "more than hydra.sweeper.max_failures=0" in result.stderr
    (failed,) = trials(tmp_path)
    assert failed.state == TrialState.FAIL
    assert failed.user_attrs["error"].startswith("NonFiniteLossError: train loss became nan or inf between step")


def test_a_non_finite_or_missing_objective_is_a_failed_trial(tmp_path):
    from types import SimpleNamespace

    from hydra.core.utils import JobStatus
    from omegaconf import OmegaConf

    sweeper = OptunaSweep("s", None, 1, ["val/loss"], ["minimize"], None, None, 0, {})
    job = SimpleNamespace(
        status=JobStatus.COMPLETED, hydra_cfg=OmegaConf.create({"hydra": {"runtime": {"output_dir": str(tmp_path)}}})
    )
    (tmp_path / "metrics.json").write_text('{"val/loss": null}')  # how metrics.json stores NaN and inf
    assert sweeper._outcome(job)[0] == TrialState.FAIL and "non-finite objective" in sweeper._outcome(job)[2]
    (tmp_path / "metrics.json").write_text('{"val/acc": 0.9}')
    assert "objective(s) ['val/loss'] not in metrics.json" in sweeper._outcome(job)[2]
    (tmp_path / "metrics.json").write_text('{"val/loss": 0.25}')
    assert sweeper._outcome(job) == (TrialState.COMPLETE, [0.25], None)


@pytest.mark.slow
def test_a_sweep_killed_mid_trial_resumes_without_losing_or_repeating_trials(tmp_path):
    import signal
    import time

    params = "      lr: tag(log, interval(1e-3, 1e-2))"
    write_search(tmp_path, params=params)
    (worker,) = start_workers(tmp_path, 1, "hydra.sweeper.n_trials=4", "trainer.max_epochs=30")
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:  # kill -9 once trial 1 is complete and trial 2 is running
        try:
            states = [t.state for t in trials(tmp_path)]
        except KeyError:  # the worker has not created the study yet
            states = []
        if states[:3] == [TrialState.COMPLETE, TrialState.COMPLETE, TrialState.RUNNING]:
            break
        time.sleep(0.5)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    killed = trials(tmp_path)[2]
    assert killed.state == TrialState.RUNNING  # what a killed process leaves behind
    result = sweep(tmp_path, "hydra.sweeper.n_trials=4", "trainer.max_epochs=2", params=params)
    assert result.returncode == 0, result.stderr[-3000:]
    done = trials(tmp_path)
    assert [t.state for t in done].count(TrialState.COMPLETE) == 4
    assert done[2].state == TrialState.FAIL and "died" in done[2].user_attrs["error"]
    retry = [t for t in done if t.user_attrs.get("retry_of") == 2]
    assert len(retry) == 1 and retry[0].params == killed.params and retry[0].state == TrialState.COMPLETE
    assert len({t.params["lr"] for t in done if t.state == TrialState.COMPLETE}) == 4
    from hyperlab.search import select

    rows = select.main([str(tmp_path / "logs" / "study")])["rows"]  # the report covers every trial, by state
    complete = {str(t.number) for t in done if t.state == TrialState.COMPLETE}
    assert {r["job"] for r in rows if r["state"] == "complete"} == complete and len(complete) == 4
    assert [(r["job"], r["state"]) for r in rows if r["state"] != "complete"] == [("2", "fail")]
