"""Registers `hydra/sweeper=study` (hyperlab.search.sweeper.OptunaSweep). Hydra imports every module of this
namespace at start-up, so nothing heavy may be imported here: optuna and torch load only when a study runs."""

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore


@dataclass
class StudySweeperConf:
    _target_: str = "hydra_plugins.study_sweeper.sweeper.StudySweeper"
    _recursive_: bool = False  # the sweeper builds the sampler itself, seeded for where the study stands
    study_name: str = "study"
    storage: str | None = None  # null: a journal file in the sweep dir; or sqlite:///..., postgresql://...
    n_trials: int = 10  # finished trials (COMPLETE or PRUNED) the study should end with
    objectives: list[str] = field(default_factory=lambda: ["${optimized_metric}"])  # metrics.json keys
    directions: list[str] = field(default_factory=lambda: ["maximize"])
    sampler: Any = None  # an instantiable optuna sampler; a partial one is given the grid's search_space
    pruner: Any = None  # an instantiable optuna pruner; null: no pruning
    max_failures: int = 3  # failed trials tolerated in one invocation before the sweep stops
    params: dict[str, str] = field(default_factory=dict)  # key: choice(...) | range(...) | interval(...)
    torch_threads: int | None = None  # intra-op threads per worker: cores / workers when several run at once
    # "key=option": {key: choice(...) | ...}: parameters sampled only in trials that chose that option
    conditional: dict[str, dict[str, str]] = field(default_factory=dict)
    # {rule: one_se | best, cost: a metrics.json key, refit: bool}: pick a winner and refit it (hyperlab.search.select)
    selection: Any = None
    nested_folds: int | None = None  # K: the search, selection and refit inside K outer folds (nested CV)


ConfigStore.instance().store(group="hydra/sweeper", name="study", node=StudySweeperConf, provider="hyperlab")
