"""Refit a model selection's winner on train + val with the protocol it was scored with; test it once.

The winning trial was scored by k-fold cross-validation over train + val, each fold keeping its best epoch by
validation loss. The refit trains the same config on all of train + val (`data.refit=true`: no val split, the
same test split) for the mean over folds of those best epoch counts, and scores its final weights on the test
split, which the search never read (`test: false` during the search). Everything lands in `<sweep>/selected/`:

- `experiment.yaml`: the refit as a `conf/experiment/` file, written first; the refit itself is
  `python train.py experiment=...` of that very file, so it reproduces the refit by construction;
- the refit's run: `metrics.json` (test/* beside the search's CV estimate, `search/*`), `checkpoints/`, `.hydra/`.

Configs are composed with Hydra's compose API; the experiment file holds the group choices and every value that
differs from them (the search's own settings, e.g. its early stopping, included), then the refit's changes.
"""

import copy
import statistics
import subprocess
import sys
from pathlib import Path

import yaml
from omegaconf import DictConfig, OmegaConf

from hyperlab import runs
from hyperlab.config.cli import CONF_DIR, compose_with_hydra

ROOT = CONF_DIR.parent  # the project: train.py and conf/
NOT_RECIPE = ("trial.", "hydra.")  # per-job bookkeeping of the sweeper, not part of what was trained
NOT_GROUPS = ("hydra", "hparams_search", "experiment", "local")  # their values come through the difference
EXPERIMENT = "selected_refit"  # the name the refit composes its experiment file under


def recipe(job_dir: Path) -> list[str]:
    """The command-line overrides that made a job (the sweep's own and its trial's parameters)."""
    overrides = yaml.safe_load((job_dir / ".hydra" / "overrides.yaml").read_text())
    return [o for o in overrides if not o.startswith(NOT_RECIPE)]


def compose(overrides: list[str], searchpath: list[str]) -> DictConfig:
    """The training config (with its `hydra` node) that `python train.py OVERRIDES` would run."""
    path = [f"hydra.searchpath=[{','.join(searchpath)}]"] if searchpath else []
    return compose_with_hydra([*path, *overrides])


def difference(config: dict, base: dict) -> dict:
    """The entries of `config` whose values differ from `base`'s (nested; a key absent from base is new)."""
    out = {}
    for key, value in config.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            inner = difference(value, base[key])
            if inner:
                out[key] = inner
        elif key not in base or base[key] != value:
            out[key] = value
    return out


def experiment(job: DictConfig, searchpath: list[str]) -> dict:
    """A `# @package _global_` experiment node that composes into `job` (a config from `compose`):
    `override /group: option` for each group, then every value that differs from those groups' files."""
    choices = {g: c for g, c in job.hydra.runtime.choices.items() if "/" not in g and g not in NOT_GROUPS and c}
    base = compose([f"{group}={option}" for group, option in choices.items()], searchpath)
    job_values, base_values = (_recipe_values(c) for c in (job, base))
    return {"defaults": [{f"override /{g}": c} for g, c in choices.items()], **difference(job_values, base_values)}


def with_changes(node: dict, changes: dict[str, object]) -> dict:
    """A copy of an experiment node with `changes` (dotted keys) set."""
    node = copy.deepcopy(node)
    for key, value in changes.items():
        *parents, leaf = key.split(".")
        inner = node
        for part in parents:
            inner = inner.setdefault(part, {})
        inner[leaf] = value
    return node


def _recipe_values(composed: DictConfig) -> dict:
    """A composed config's values as written (interpolations kept), less Hydra's node and the sweeper's trial."""
    values = OmegaConf.to_container(composed, resolve=False)
    return {key: value for key, value in values.items() if key not in ("hydra", "trial")}


def refit_epochs(job_metrics: dict) -> int:
    """Epochs for the refit: the mean over folds of the epochs each fold needed to reach its best checkpoint
    (the epoch count the cross-validation found), at least 1."""
    folds = job_metrics.get("folds") or [job_metrics]
    return max(1, round(statistics.fmean(f["trainer/best_epoch"] + 1 for f in folds)))


def changes(job_cfg: DictConfig, epochs: int) -> dict[str, object]:
    """What turns a scored trial into its refit: train + val, the CV's epoch count, no validation to stop on
    or to pick a checkpoint by (the final weights are scored), and the one test."""
    out = {
        "data.num_folds": None,
        "data.fold": None,
        "data.refit": True,
        "trainer.max_epochs": epochs,
        "min_train_steps": None,  # the CV's epochs, not the budget's epochs over train + val's more rows
        "trainer.min_epochs": None,
        "trainer.limit_val_batches": 0,
        "callbacks.early_stopping": None,
        "test": True,
        "optimized_metric": None,
    }
    if OmegaConf.select(job_cfg, "callbacks.model_checkpoint") is not None:
        out["callbacks.model_checkpoint.monitor"] = None  # keep the last epoch's weights
    else:  # the search's trials keep no checkpoint (their final weights are scored); the refit is the model kept
        default = OmegaConf.load(CONF_DIR / "callbacks" / "model_checkpoint.yaml").model_checkpoint
        out["callbacks.model_checkpoint"] = {**OmegaConf.to_container(default), "monitor": None}
    return out


def write_experiment(path: Path, node: dict, header: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("# @package _global_\n" + header + yaml.safe_dump(node, sort_keys=False))


def refit(sweep_dir: Path, job: str, job_cfg: DictConfig, scored: dict, searchpath: list[str], search: dict) -> dict:
    """Refit job `job` of the sweep (its composed config and its `experiment` node as scored) into
    `<sweep>/selected/`; returns the refit's metrics.json, which also holds `search` (the search's figures for the
    winner, e.g. its CV mean and standard error)."""
    job_dir, selected = sweep_dir / job, sweep_dir / "selected"
    overrides = recipe(job_dir)
    epochs = refit_epochs(runs.read_metrics(job_dir))
    node = with_changes(scored, changes(job_cfg, epochs))
    header = (
        f"# Refit of trial {job} of the model selection in {sweep_dir}: {', '.join(overrides)}\n"
        f"# on train + val for {epochs} epochs (its folds' mean epochs to their scored checkpoints), tested once.\n"
        f"#   cp {selected / 'experiment.yaml'} conf/experiment/mine.yaml && python train.py experiment=mine\n"
    )
    write_experiment(selected / "experiment.yaml", node, header)
    conf = selected / ".conf"
    write_experiment(conf / "experiment" / f"{EXPERIMENT}.yaml", node, header)
    arguments = [
        f"experiment={EXPERIMENT}",
        f"hydra.searchpath=[{','.join([f'file://{conf}', *searchpath])}]",
    ]
    return run_into(selected, "train.py", arguments, search, {"refit/epochs": epochs, "refit/trial": _number(job)})


def _number(job: str) -> int | str:
    return int(job) if job.isdigit() else job


def run_into(selected: Path, script: str, arguments: list[str], search: dict, facts: dict) -> dict:
    """`python SCRIPT ARGUMENTS` run with `selected/` as its run dir (train.py for a refit, eval.py for a selected
    classical model); its metrics.json gains the search's figures (`search/*`) and `facts`, and is returned."""
    command = [sys.executable, str(ROOT / script), *arguments, f"hydra.run.dir={selected}"]
    if subprocess.run(command).returncode != 0:
        raise SystemExit(f"error: the refit failed: {' '.join(command)}")
    metrics = runs.read_metrics(selected)
    metrics.update({f"search/{key}": value for key, value in search.items()})
    metrics.update(facts)
    runs.write_metrics(selected, metrics)
    return metrics


def set_aside(path: Path) -> Path:
    """Rename `path` to the first free `<name>.replaced.<n>`: an earlier refit is kept, never overwritten."""
    n = 1
    while path.with_name(f"{path.name}.replaced.{n}").exists():
        n += 1
    kept = path.with_name(f"{path.name}.replaced.{n}")
    path.rename(kept)
    return kept
