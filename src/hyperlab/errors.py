"""The errors every layer raises, and `choose`: no torch, no Hydra, so any module may import this one.

A `ReportedError` reaches the user as one line (`error: ...`, exit status 1) instead of a traceback
(hyperlab.config.cli.reported_errors); a `ConfigError` is bad user input and names the key and what is allowed.
"""


class ReportedError(Exception):
    """An error the command line reports as one line (no traceback): bad input, or a run that cannot go on."""


class ConfigError(ReportedError, ValueError):
    """Bad user input, reported as one line naming the key and what is allowed."""


def choose(key: str, value, allowed, optional: bool = False):
    """`value` if it is one of `allowed`, else a ConfigError naming the key and the choices (`null` first when
    the key is optional)."""
    if value not in allowed:
        choices = (["null"] if optional else []) + list(allowed)
        raise ConfigError(f"{key}={value!r} is not one of: {', '.join(choices)}")
    return value
