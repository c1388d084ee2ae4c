"""The search space: Hydra's sweep syntax (choice, range, interval, tags) as Optuna distributions, conditional
blocks sampled define-by-run, and a trial's parameters back as Hydra overrides."""

import optuna
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, Override, RangeSweep
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from hyperlab.errors import ConfigError


class SweepError(ConfigError):
    """A search space the sweep cannot run (reported as one line, like every config error)."""


def distribution(override: Override) -> BaseDistribution:
    """Hydra sweep syntax -> Optuna distribution: choice(a,b), range(lo,hi[,step]), [tag(log,] interval(lo,hi))."""
    value = override.value()
    if isinstance(value, ChoiceSweep):  # Optuna's choices are scalars: a list choice travels as its Hydra literal
        return CategoricalDistribution([hydra_list(v) if isinstance(v, list) else v for v in override.sweep_iterator()])
    if isinstance(value, RangeSweep):
        items = list(override.sweep_iterator())
        if all(isinstance(v, int) for v in items):
            return IntDistribution(items[0], items[-1], step=int(value.step))
        return CategoricalDistribution(items)
    if isinstance(value, IntervalSweep):
        log_scale = "log" in value.tags
        if isinstance(value.start, int) and isinstance(value.end, int):
            return IntDistribution(value.start, value.end, log=log_scale)
        return FloatDistribution(value.start, value.end, log=log_scale)
    raise SweepError(f"hydra.sweeper.params.{override.get_key_element()}: use choice(), range() or interval()")


def search_space(arguments: list[str]) -> tuple[dict[str, BaseDistribution], list[str]]:
    """Split `key=value` strings into the sampled space and the overrides every trial gets as they are."""
    space, fixed = {}, []
    for override in OverridesParser.create().parse_overrides(arguments):
        if override.is_sweep_override():
            space[override.get_key_element()] = distribution(override)
        else:
            fixed.append(f"{override.get_key_element()}={override.get_value_element_as_str()}")
    return space, fixed


def hydra_list(items: list) -> str:
    return "[" + ",".join(hydra_list(v) if isinstance(v, list) else str(v) for v in items) + "]"


Conditions = dict[tuple[str, str], dict[str, BaseDistribution]]


def conditional_space(conditional: dict, space: dict[str, BaseDistribution]) -> Conditions:
    """`{"model=cnn": {"model.channels": "choice(...)"}}` -> {("model", "cnn"): {"model.channels": distribution}}.
    The condition names a sampled choice parameter (or a conditional one defined in an earlier block); a block
    for an option that is not among its choices is never active (the data may rule a family out)."""
    conditions, known = {}, dict(space)
    for when, params in (conditional or {}).items():
        parent, _, option = str(when).partition("=")
        if not isinstance(known.get(parent), CategoricalDistribution) or not option:
            raise SweepError(
                f"hydra.sweeper.conditional.{when}: a condition is `key=option` for a choice() in "
                f"hydra.sweeper.params or an earlier conditional block; choices: "
                f"{', '.join(k for k, d in known.items() if isinstance(d, CategoricalDistribution))}"
            )
        block, fixed = search_space([f"{k}={v}" for k, v in params.items()])
        if fixed:
            raise SweepError(f"hydra.sweeper.conditional.{when}: {fixed[0]} is not a choice/range/interval")
        conditions[(parent, option)] = block
        known.update(block)
    return conditions


def suggest(trial: optuna.Trial, name: str, dist: BaseDistribution):
    """Sample one parameter inside a running trial (define-by-run)."""
    if isinstance(dist, CategoricalDistribution):
        return trial.suggest_categorical(name, dist.choices)
    if isinstance(dist, IntDistribution):
        return trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)
    return trial.suggest_float(name, dist.low, dist.high, step=dist.step, log=dist.log)


def ask(study: optuna.Study, space: dict[str, BaseDistribution], conditions: Conditions) -> optuna.Trial:
    """A trial with every parameter of `space` and, block by block, those of the conditions it meets."""
    trial = study.ask(space)
    for (parent, option), block in conditions.items():
        chosen = {override_key(name): value for name, value in trial.params.items()}
        if parent in chosen and str(chosen[parent]) == option:
            for name, dist in block.items():
                # named with its condition: Optuna keeps one distribution per name, and model.channels may
                # have other choices for model=resnet than for model=cnn
                suggest(trial, f"{name}{CONDITION}{parent}={option}", dist)
    return trial


CONDITION = " if "


def override_key(name: str) -> str:
    """A trial parameter's config key: "model.channels if model=cnn" -> "model.channels"."""
    return name.partition(CONDITION)[0]


def enqueue_every_option(study: optuna.Study, space: dict[str, BaseDistribution], conditions: Conditions) -> None:
    """A fresh study's first trials: one per option that has a conditional block (each model family), its other
    parameters sampled. With a few random startup trials a family can otherwise go unexplored, and the search
    then never compares it."""
    for parent, option in conditions:
        choices = getattr(space.get(parent), "choices", ())
        value = next((c for c in choices if str(c) == option), None)
        if value is not None:
            study.enqueue_trial({parent: value})


def grid(space: dict[str, BaseDistribution]) -> dict[str, list]:
    values = {}
    for key, dist in space.items():
        if isinstance(dist, CategoricalDistribution):
            values[key] = list(dist.choices)
        elif isinstance(dist, IntDistribution) and not dist.log:
            values[key] = list(range(dist.low, dist.high + 1, dist.step))
        else:
            raise SweepError(f"grid search needs discrete values: hydra.sweeper.params.{key} is an interval")
    return values


def quoted(value) -> str:
    """A sampled value as a Hydra override value (strings quoted unless they are plain names)."""
    if isinstance(value, str) and value.startswith("[") and value.endswith("]"):
        return value  # a list choice (hydra_list)
    if isinstance(value, str) and not value.replace("_", "").replace("-", "").replace(".", "").isalnum():
        return "'" + value.replace("'", "\\'") + "'"
    return repr(value) if isinstance(value, float) else str(value)
