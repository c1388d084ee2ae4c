"""The command line's side of the config: compose it as `train.py` would, `--help`, and one-line errors.

Only omegaconf/hydra are imported; composing registers the schema (hyperlab.config.schema) first.
"""

import os
from contextlib import contextmanager
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from hyperlab.config import schema  # noqa: F401  (registers train_schema, which conf/train.yaml names)
from hyperlab.errors import ReportedError

CONF_DIR = Path(__file__).resolve().parents[3] / "conf"


@contextmanager
def reported_errors(job: bool = True):
    """Turn a ReportedError into one clear line on stderr and exit status 1 (as Hydra's own errors), no traceback;
    HYDRA_FULL_ERROR=1 shows the traceback, as it does for Hydra's own errors. A `job` of a sweep raises instead:
    the sweeper records it as failed and the sweep goes on; the sweeper's own errors (`job=False`) stop it."""
    try:
        yield
    except ReportedError as error:
        if os.environ.get("HYDRA_FULL_ERROR") == "1" or (job and in_multirun()):
            raise
        raise SystemExit(f"error: {error}") from None


def refuse_a_search_space_without_multirun(args: list[str]) -> None:
    """`hydra.sweeper.params.KEY=...` is a search space: a single run (no -m) has no sweeper to give it to, and
    Hydra fails on it with an omegaconf assertion; say what it needs instead, before anything is composed."""
    multirun = {"-m", "--multirun"} & set(args)
    spaces = [arg for arg in args if arg.lstrip("+~").startswith("hydra.sweeper.params")]
    if spaces and not multirun:
        key = spaces[0].partition("=")[0]
        raise SystemExit(
            f"error: {key} sets a search space, which only a sweep reads: add -m "
            f"(python train.py -m hparams_search=... {spaces[0]})"
        )


class HydraConfigBeforeTheJobs(Callback):
    """A Hydra callback (conf/hydra/default.yaml): under `-m`, Hydra's config for the sweep before any job runs.

    The sweep dir is under ${paths.root_dir}, which is ${hydra:runtime.cwd}; Hydra sets the config that resolver
    reads only for each job, after the sweeper has read the sweep dir, so a sweep without a `paths.log_dir`
    override stopped with "HydraConfig was not set". Each job's own config replaces this one, as before."""

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        from hydra.core.hydra_config import HydraConfig

        HydraConfig.instance().set_config(config)


def in_multirun() -> bool:
    """Whether this job runs under `-m` (a sweep), as opposed to a single run."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def print_help(overrides: list[str], config_name: str = "train") -> None:
    """`train.py --help`: the help text's header, every config group with its options, the composed config
    (unresolved, with `overrides` applied) and the footer. Hydra's own app help lists groups by deep-copying its
    config repository several times per group, about 0.6 s here with ~30 groups; reading conf/ directly gives
    the same listing in a few milliseconds. `--hydra-help` is still Hydra's."""
    conf_dir = CONF_DIR
    cfg = compose_with_hydra(overrides, config_name)
    groups = sorted(
        (str(folder.relative_to(conf_dir)), sorted(f.stem for f in folder.glob("*.yaml")))
        for folder in conf_dir.rglob("*")
        if folder.is_dir() and folder.name != "hydra" and "hydra" not in folder.relative_to(conf_dir).parts
    )
    help_cfg = cfg.hydra.help
    del cfg.hydra
    lines = [
        help_cfg.header.rstrip(),
        "",
        "== Configuration groups ==",
        "Compose your configuration from those groups (group=option)",
        "",
    ]
    lines += [f"{group}: {', '.join(options)}" for group, options in groups if options]
    lines += ["", "== Config ==", "Override anything in the config (foo.bar=value)", "", OmegaConf.to_yaml(cfg)]
    print("\n".join(lines) + help_cfg.footer)


def compose_with_hydra(overrides: list[str], config_name: str = "train") -> DictConfig:
    """The config `python train.py OVERRIDES` would compose, with its `hydra` node (runtime.choices: the option
    of every group)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra_compose(config_name, overrides=overrides, return_hydra_config=True)


def compose(overrides: list[str], output_dir: str | Path, config_name: str = "train") -> DictConfig:
    """The config `python train.py OVERRIDES` would run, for notebooks and tests, writing under `output_dir`."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    cfg = compose_with_hydra(overrides, config_name)
    HydraConfig.instance().set_config(cfg)  # for the ${hydra:...} interpolations in paths/
    output_dir = Path(output_dir).resolve()
    with open_dict(cfg):
        cfg.paths.root_dir = str(CONF_DIR.parent)
        cfg.paths.log_dir = str(output_dir / "logs")
        cfg.paths.output_dir = str(output_dir)
        del cfg.hydra
    output_dir.mkdir(parents=True, exist_ok=True)
    return cfg
