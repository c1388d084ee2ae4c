"""A constructor's refusal named by the key that fed it: `optimizer.momentum=-0.5: Invalid momentum value: -0.5`.

Constructors (torch's optimizers, Lightning's Trainer, our modules) check their own arguments; `key_errors` only
says which knob the user should change. Only omegaconf/hydra are imported.
"""

import re
from contextlib import contextmanager

from omegaconf import DictConfig, OmegaConf

from hyperlab.errors import ConfigError, ReportedError


@contextmanager
def key_errors(prefix: str, node: DictConfig | None):
    """Any error raised while constructing from the config at `prefix` (an optimizer's, a callback's, the
    Trainer's...) becomes a ConfigError that names the key that fed it: `optimizer.momentum=-0.5: Invalid momentum
    value: -0.5`. Constructors check their own arguments; this only says which knob the user should change.
    A key set through an interpolation (`lr: ${lr}`) is named as the user typed it (`lr=...`)."""
    try:
        yield
    except ReportedError:
        raise
    except Exception as error:
        message = _constructor_message(error)
        if re.search(rf"(^|\s){re.escape(prefix)}\b", message):  # the constructor already named the key
            raise ConfigError(message) from error
        found = culprit(prefix, node, message)
        target = OmegaConf.select(node, "_target_", default=None) if isinstance(node, DictConfig) else None
        where = found or (f"{prefix} ({target})" if target else prefix)
        raise ConfigError(f"{where}: {message}") from error


def _constructor_message(error: Exception) -> str:
    """The constructor's own words: Hydra wraps them in "Error in call to target ...", which names no key."""
    from hydra.errors import InstantiationException

    if isinstance(error, InstantiationException) and error.__cause__ is not None:
        error = error.__cause__
    text = str(error).strip() or type(error).__name__
    return text if isinstance(error, (ValueError, TypeError)) else f"{type(error).__name__}: {text}"


_NUMBER = re.compile(r"-?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?|-?inf|nan", re.IGNORECASE)


def culprit(prefix: str, node: DictConfig | None, message: str) -> str | None:
    """`key=value` for the leaf of `node` that `message` is about: its value and name both appear in the message
    (best), its value, or its name. Values are compared as numbers where they are numbers (torch writes -1 as
    -1.0); names also match as a prefix of a word ("eps" -> "epsilon") or without a plural s ("betas")."""
    if not isinstance(node, DictConfig):
        return None
    numbers = {float(n) for n in _NUMBER.findall(message)}
    words = re.findall(r"[a-z][a-z0-9_]*", message.lower())
    raw = OmegaConf.to_container(node, resolve=False)
    resolved = OmegaConf.to_container(node, resolve=True, throw_on_missing=False)
    best, best_score = None, 0
    for key, value, source in _leaves(prefix, raw, resolved):
        name = key.rsplit(".", 1)[-1].lower()
        named = any(w == name or w == name.rstrip("s") or (len(name) >= 3 and w.startswith(name)) for w in words)
        score = 2 * _appears(value, numbers, message) + named
        if score > best_score:
            best, best_score = f"{source or key}={value!r}", score
    return best


def _leaves(prefix: str, raw, resolved):
    """(dotted key, resolved value, the key it interpolates or None) for every leaf but _target_/_partial_."""
    for key, value in resolved.items():
        if str(key).startswith("_"):
            continue
        dotted, raw_value = f"{prefix}.{key}", raw.get(key)
        if isinstance(value, dict):
            yield from _leaves(dotted, raw_value, value)
            continue
        match = re.fullmatch(r"\$\{([\w.]+)\}", raw_value) if isinstance(raw_value, str) else None
        yield dotted, value, match.group(1) if match else None


def _appears(value, numbers: set[float], message: str) -> bool:
    if isinstance(value, list):
        return any(_appears(v, numbers, message) for v in value)
    if isinstance(value, bool) or value is None:
        return False
    if isinstance(value, (int, float)):
        return float(value) in numbers
    return len(str(value)) >= 2 and str(value) in message
