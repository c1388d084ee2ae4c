"""Config-time checks of a sweep (`python train.py -m hparams_search=...`), run by the study sweeper's Hydra plugin
before optuna or torch load, before the sweep dir, the study or any trial exists.

`check_sweeper(settings)`: the `hydra.sweeper.*` keys (trial counts, objectives, sampler and pruner, storage,
selection, nested folds). `check_search(cfg, settings)`: the train config every trial starts from
(hyperlab.config.rules.check), and every value the search space can give a key (each choice, a range's values,
an interval's ends) against that key's rule, so that `model.dropout: interval(0, 1)` fails now, not in trial 7.
Each raises a ConfigError naming the key and what is allowed.
"""

import copy
import math

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import IntervalSweep
from omegaconf import DictConfig, OmegaConf, open_dict

from hyperlab.config.cli import CONF_DIR
from hyperlab.config.rules import check, is_integer, value_rules
from hyperlab.errors import ConfigError

SELECTION_RULES = ("one_se", "best")  # hyperlab.search.select
SELECTION_KEYS = ("rule", "cost", "refit", "baselines")
BASELINES = (True, False, "compete")  # compete: a baseline that beats the best net by > 1 SE is the one selected
DIRECTIONS = ("maximize", "minimize")
STORAGE_SCHEMES = ("sqlite", "postgresql", "mysql")  # Optuna's RDB storages; else a journal file path


def _count(key: str, value, least: int, none_ok: bool = False) -> None:
    if (value is None and none_ok) or (is_integer(value) and value >= least):
        return
    raise ConfigError(f"{key}={value!r}: must be {'null or ' if none_ok else ''}an integer >= {least}")


def check_sweeper(settings: dict) -> None:
    """The study sweeper's own settings (hydra.sweeper.*), as its Hydra plugin receives them."""
    key = "hydra.sweeper."
    if not isinstance(settings.get("study_name"), str) or not settings["study_name"]:
        raise ConfigError(f"{key}study_name={settings.get('study_name')!r}: must be a non-empty name")
    _count(f"{key}n_trials", settings.get("n_trials"), 1)
    _count(f"{key}max_failures", settings.get("max_failures"), 0)
    _count(f"{key}torch_threads", settings.get("torch_threads"), 1, none_ok=True)
    _check_storage(settings.get("storage"))
    objectives, directions = list(settings.get("objectives") or []), list(settings.get("directions") or [])
    if not objectives or not all(isinstance(o, str) and "/" in o for o in objectives):
        raise ConfigError(f"{key}objectives={objectives}: must be one or more metrics.json keys (val/acc, ...)")
    if len(objectives) != len(directions) or not all(d in DIRECTIONS for d in directions):
        raise ConfigError(f"{key}directions={directions}: one of {' | '.join(DIRECTIONS)} per objective ({objectives})")
    for part, package in (("sampler", "optuna.samplers."), ("pruner", "optuna.pruners.")):
        _check_optuna_node(f"{key}{part}", settings.get(part), package)
    if settings.get("pruner") and len(objectives) > 1:
        raise ConfigError(f"{key}pruner: Optuna prunes single-objective studies only: set {key}pruner=null")
    _check_selection(settings.get("selection"), settings.get("nested_folds"), objectives)


# Optuna's samplers take some counts unchecked (TPESampler(n_startup_trials=-3) runs, as random search never ends)
COUNTS = ("n_startup_trials", "n_warmup_steps", "interval_steps", "n_ei_candidates", "min_resource", "seed")


def _check_optuna_node(key: str, node, package: str) -> None:
    if node is None:
        return
    if not str(node.get("_target_")).startswith(package):
        raise ConfigError(f"{key}._target_={node.get('_target_')!r}: must be null or a class in {package}*")
    for name in COUNTS:
        value = node.get(name)
        if value is not None and value != "auto":
            _count(f"{key}.{name}", value, 1 if name == "min_resource" else 0)


def _check_storage(storage) -> None:
    if storage is None:
        return
    scheme, sep, _ = str(storage).partition("://")
    if not isinstance(storage, str) or (sep and scheme.split("+")[0] not in STORAGE_SCHEMES):
        raise ConfigError(
            f"hydra.sweeper.storage={storage!r}: must be null (a journal in the sweep dir), a journal file path, "
            f"or a database URL ({', '.join(s + '://...' for s in STORAGE_SCHEMES)})"
        )


def _check_selection(selection, nested_folds, objectives: list[str]) -> None:
    key = "hydra.sweeper.selection"
    if selection is not None:
        unknown = sorted(set(selection) - set(SELECTION_KEYS))
        if unknown:
            raise ConfigError(f"{key}.{unknown[0]}: unknown; the keys are {', '.join(SELECTION_KEYS)}")
        if selection.get("rule", "one_se") not in SELECTION_RULES:
            raise ConfigError(f"{key}.rule={selection.get('rule')!r}: must be {' | '.join(SELECTION_RULES)}")
        if "/" not in str(selection.get("cost", "model/flops")):
            raise ConfigError(f"{key}.cost={selection.get('cost')!r}: must be a metrics.json key (model/flops, ...)")
        if not isinstance(selection.get("refit", False), bool):
            raise ConfigError(f"{key}.refit={selection.get('refit')!r}: must be true or false")
        if selection.get("baselines", False) not in BASELINES:
            raise ConfigError(f"{key}.baselines={selection.get('baselines')!r}: must be true, false or compete")
    if (selection or nested_folds) and len(objectives) > 1:
        raise ConfigError(f"{key} picks one winner: it needs a single objective (objectives: {objectives})")
    if nested_folds is not None and not (is_integer(nested_folds) and nested_folds >= 2 and selection):
        raise ConfigError(
            f"hydra.sweeper.nested_folds={nested_folds!r}: null, or an integer >= 2 with hydra.sweeper.selection set"
        )


def check_search(cfg: DictConfig, settings: dict) -> None:
    """The config every trial starts from, then every value the search space may set, key by key."""
    base = copy.deepcopy(cfg)
    with open_dict(base):  # no job has run yet: the paths a job would get from HydraConfig, from the config itself
        base.paths.root_dir = cfg.hydra.runtime.cwd
        base.paths.output_dir = str(cfg.hydra.sweep.dir)
        base.pop("hydra", None)
    check(base)
    selection = settings.get("selection") or {}
    if selection.get("rule", "one_se") == "one_se" and selection and not OmegaConf.select(base, "data.num_folds"):
        raise ConfigError(
            "hydra.sweeper.selection.rule=one_se needs each trial's standard error: set data.num_folds "
            "(e.g. 5) or hydra.sweeper.selection.rule=best"
        )
    blocks = {"params": settings.get("params") or {}}
    blocks.update({f"conditional.{when}": params for when, params in (settings.get("conditional") or {}).items()})
    for when in settings.get("conditional") or {}:
        group, _, option = str(when).partition("=")
        _check_option(f"hydra.sweeper.conditional.{when}", group, option)
    for block, params in blocks.items():
        for key, spec in params.items():
            for value in _values(f"{key}={spec}"):
                _check_value(base, f"hydra.sweeper.{block}.{key}", str(key).lstrip("+"), value)


def _values(override: str) -> list:
    """The values a search-space entry can set: each choice, each value of a range, an interval's two ends."""
    (parsed,) = OverridesParser.create().parse_overrides([override])
    if not parsed.is_sweep_override():
        return [parsed.value()]
    if isinstance(parsed.value(), IntervalSweep):
        return [parsed.value().start, parsed.value().end]
    return list(parsed.sweep_iterator())


def _check_value(base: DictConfig, where: str, key: str, value) -> None:
    if (CONF_DIR / key).is_dir():  # a config group: each option must be one of its files
        _check_option(where, key, value)
        return
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{where}: {value} is not a setting")
    trial = copy.deepcopy(base)
    OmegaConf.update(trial, key, value, force_add=True)
    try:
        value_rules(trial, only=key)  # the base passed every rule: only this key's can fail
    except ConfigError as error:
        raise ConfigError(f"{where}: {error}") from None


def _check_option(where: str, group: str, option) -> None:
    """`group=option` names a file conf/<group>/<option>.yaml (a key that is no config group names no file)."""
    if (CONF_DIR / group).is_dir() and not (CONF_DIR / group / f"{option}.yaml").is_file():
        options = sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))
        raise ConfigError(f"{where}: {option!r} is not an option of {group}/; options: {', '.join(options)}")
