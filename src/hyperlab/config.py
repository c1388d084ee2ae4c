"""Config-time checks: typed top-level keys and value rules, run before torch is imported.

`TrainConfig` is the schema of the top-level keys of conf/train.yaml: Hydra rejects `lr=abc`, `seed=1.5` or an
unknown key at compose time. `check()` then applies the value rules a type cannot express (lr > 0, fractions
summing to < 1, ...) so that bad input costs a second, not a training run. Only omegaconf/hydra are imported.
"""

import math
import os
import re
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf


class ReportedError(Exception):
    """An error the command line reports as one line (no traceback): bad input, or a run that cannot go on."""


class ConfigError(ReportedError, ValueError):
    """Bad user input, reported as one line naming the key and what is allowed."""


@dataclass
class TrainConfig:
    task_name: str = "train"
    tags: list[str] = field(default_factory=list)
    seed: int = 42
    lr: float = 1e-3
    weight_decay: float = 0.0
    no_decay_bias_norm: bool = False
    regularization: Any = None
    batch_size: int = 64
    train: bool = True
    test: bool = True
    ckpt_path: str | None = None
    resume: str = "never"
    optimized_metric: str | None = "val/acc"
    finetune: Any = None
    distill: Any = None
    adversarial: Any = None
    tune: Any = None
    compile: bool = False
    matmul_precision: str = "highest"
    quantize: str | None = None
    interpret: Any = None
    trial: Any = None  # the study sweeper's trial for this job (hydra_plugins/study_sweeper)
    # config groups, typed by their own files
    data: Any = None
    model: Any = None
    loss: Any = None
    augment: Any = None
    optimizer: Any = None
    scheduler: Any = None
    trainer: Any = None
    callbacks: Any = None
    logger: Any = None
    paths: Any = None


ConfigStore.instance().store(name="train_schema", node=TrainConfig)

# The wandb logger is offline unless the user has set an API key.
OmegaConf.register_new_resolver("env_unset", lambda name: name not in os.environ, replace=True)

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
RESUME_MODES = ("never", "auto")
DATA_TASKS = ("classification", "regression", "language_model")
SAMPLERS = ("weighted", "oversample", "undersample", "smote")  # data.sampler
OUTLIER_METHODS = ("isolation_forest",)


def choose(key: str, value, allowed, optional: bool = False):
    """`value` if it is one of `allowed`, else a ConfigError naming the key and the choices (`null` first when
    the key is optional). The models package keeps its own copy (hyperlab.models.layers) to stay Hydra-free."""
    if value not in allowed:
        choices = (["null"] if optional else []) + list(allowed)
        raise ConfigError(f"{key}={value!r} is not one of: {', '.join(choices)}")
    return value


def _number(value) -> bool:
    """A finite int or float: `lr=inf` or `model.dropout=nan` is never a setting, it is a typo or a bug."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _integer(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


MATMUL_PRECISIONS = ("highest", "high", "medium")  # torch.set_float32_matmul_precision

# (key, rule, what is allowed). Keys absent from the composed config (e.g. a model without dropout) are skipped.
RULES = [
    ("matmul_precision", lambda v: v in MATMUL_PRECISIONS, " | ".join(MATMUL_PRECISIONS)),
    ("lr", lambda v: _number(v) and v > 0, "a number > 0"),
    ("weight_decay", lambda v: _number(v) and v >= 0, "a number >= 0"),
    ("batch_size", lambda v: _integer(v) and v >= 1, "an integer >= 1"),
    ("data.batch_size", lambda v: _integer(v) and v >= 1, "an integer >= 1"),
    # val/* metrics drive checkpoints, early stopping and sweeps: the validation split cannot be empty
    ("data.val_fraction", lambda v: _number(v) and 0 < v < 1, "a number in (0, 1)"),
    ("data.test_fraction", lambda v: _number(v) and 0 <= v < 1, "a number in [0, 1)"),
    ("data.num_workers", lambda v: _integer(v) and v >= 0, "an integer >= 0"),
    ("data.split_seed", lambda v: _integer(v) and v >= 0, "an integer >= 0"),
    ("model.dropout", lambda v: _number(v) and 0 <= v < 1, "a number in [0, 1)"),
    ("model.depth", lambda v: _integer(v) and v >= 0, "an integer >= 0"),
    ("model.width", lambda v: _integer(v) and v >= 1, "an integer >= 1"),
    ("trainer.max_epochs", lambda v: v is None or (_integer(v) and (v >= 1 or v == -1)), "an integer >= 1, or -1"),
    ("trainer.max_steps", lambda v: _integer(v) and (v >= 1 or v == -1), "an integer >= 1, or -1 (no limit)"),
    ("trainer.accumulate_grad_batches", lambda v: _integer(v) and v >= 1, "an integer >= 1"),
    ("trainer.gradient_clip_algorithm", lambda v: v in ("norm", "value"), "norm or value"),
    # Lightning takes a negative clip value and clips every gradient to it: not what anyone means
    ("trainer.gradient_clip_val", lambda v: v is None or (_number(v) and v >= 0), "null or a number >= 0"),
    ("callbacks.early_stopping.patience", lambda v: _integer(v) and v >= 0, "an integer >= 0"),
    ("callbacks.rich_progress_bar.every_n_batches", lambda v: _integer(v) and v >= 1, "an integer >= 1"),
    ("scheduler.warmup_steps", lambda v: _integer(v) and v >= 0, "an integer >= 0"),
    # torch's StepLR/ExponentialLR take gamma=0 (the LR is 0 from the first decay on) and gamma < 0
    ("scheduler.gamma", lambda v: _number(v) and v > 0, "a number > 0"),
    ("scheduler.step_size", lambda v: _integer(v) and v >= 1, "an integer >= 1"),
    ("data.num_folds", lambda v: v is None or (_integer(v) and v >= 2), "null or an integer >= 2"),
    ("data.outer_folds", lambda v: v is None or (_integer(v) and v >= 2), "null or an integer >= 2"),
    ("data.refit", lambda v: isinstance(v, bool), "true or false"),
    ("data.task", lambda v: v in DATA_TASKS, " | ".join(DATA_TASKS)),
    ("data.sampler", lambda v: v in (None, *SAMPLERS), "null | " + " | ".join(SAMPLERS)),
    ("data.outliers", lambda v: v in (None, *OUTLIER_METHODS), "null | " + " | ".join(OUTLIER_METHODS)),
    ("data.outlier_fraction", lambda v: _number(v) and 0 < v <= 0.5, "a number in (0, 0.5]"),
    ("data.imbalance", lambda v: v is None or (_number(v) and 0 < v <= 1), "null or a number in (0, 1]"),
    ("data.smooth_sigma", lambda v: _number(v) and v >= 0, "a number >= 0 (0 = off)"),
    ("data.prefetch_factor", lambda v: v is None or (_integer(v) and v >= 1), "null or an integer >= 1"),
    ("loss.label_smoothing", lambda v: _number(v) and 0 <= v < 1, "a number in [0, 1)"),
    ("regularization.l1", lambda v: _number(v) and v >= 0, "a number >= 0"),
    ("regularization.l2", lambda v: _number(v) and v >= 0, "a number >= 0"),
    ("model.tbptt_steps", lambda v: v is None or (_integer(v) and v >= 1), "null or an integer >= 1"),
    ("finetune.scope", lambda v: v in ("all", "backbone"), "all or backbone"),
    ("finetune.unfreeze_at_epoch", lambda v: v is None or (_integer(v) and v >= 0), "null or an integer >= 0"),
    ("finetune.backbone_lr_scale", lambda v: _number(v) and v > 0, "a number > 0"),
    ("distill.temperature", lambda v: _number(v) and v > 0, "a number > 0"),
    ("distill.alpha", lambda v: _number(v) and 0 <= v <= 1, "a number in [0, 1]"),
    ("adversarial.attack", lambda v: v in (None, "fgsm", "pgd"), "null | fgsm | pgd"),
    ("adversarial.epsilon", lambda v: _number(v) and v > 0, "a number > 0"),
    ("adversarial.steps", lambda v: _integer(v) and v >= 1, "an integer >= 1"),
    ("quantize", lambda v: v in (None, "dynamic", "static"), "null, dynamic or static"),
    ("interpret.samples", lambda v: _integer(v) and v >= 0, "an integer >= 0"),
    ("model.blocks", lambda v: _integer(v) and v >= 1, "an integer >= 1"),
    ("model.base_width", lambda v: _integer(v) and v >= 1, "an integer >= 1"),
    ("model.heads", lambda v: _integer(v) and v >= 1, "an integer >= 1"),
    ("resume", lambda v: v in RESUME_MODES, " or ".join(RESUME_MODES)),
    ("optimized_metric", lambda v: v is None or str(v).startswith(("val/", "test/")), "null or a val/* or test/* key"),
]

_ABSENT = object()


def _check_no_validation(cfg: DictConfig, num_folds) -> None:
    """data.refit=true leaves no val split: nothing may monitor or optimise a val/* metric."""
    if num_folds:
        raise ConfigError(f"data.refit=true trains on train + val as one split: set data.num_folds=null ({num_folds})")
    watched = [("optimized_metric", cfg.get("optimized_metric"))] + [
        (f"callbacks.{name}.monitor", node.get("monitor"))
        for name, node in (cfg.get("callbacks") or {}).items()
        if node is not None and hasattr(node, "get")
    ]
    for key, metric in watched:
        if str(metric).startswith("val/"):
            raise ConfigError(
                f"data.refit=true leaves no val split, but {key}={metric}: set it to null "
                "(callbacks.early_stopping=null for early stopping; a checkpoint with monitor=null keeps the "
                "final weights)"
            )


def check(cfg: DictConfig) -> None:
    """Raise ConfigError for the first value that breaks a rule, before anything is built or trained."""
    training = OmegaConf.get_type(cfg) is TrainConfig  # else eval.py's config
    if training:
        # `+typo=1` force-adds a key nothing reads: refuse it rather than train without the intended change
        known = {f.name for f in fields(TrainConfig)}
        unknown = sorted(set(cfg) - known)
        if unknown:
            raise ConfigError(f"unknown top-level key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise ConfigError(f"required value(s) not set: {', '.join(missing)} (e.g. {missing[0]}=...)")
    for key, rule, allowed in RULES:
        value = OmegaConf.select(cfg, key, default=_ABSENT)
        if value is not _ABSENT and not rule(value):
            raise ConfigError(f"{key}={value!r} is not allowed: must be {allowed}")
    data = cfg.get("data") or {}
    if "val_fraction" in data and data.val_fraction + data.test_fraction >= 1:
        raise ConfigError(
            f"data.val_fraction={data.val_fraction} + data.test_fraction={data.test_fraction} "
            "must sum to < 1 (the rest is the train split)"
        )
    num_folds, fold = data.get("num_folds"), data.get("fold")
    if fold is not None and not (num_folds and _integer(fold) and 0 <= fold < num_folds):
        raise ConfigError(
            f"data.fold={fold!r} is not allowed: must be null or an integer in [0, data.num_folds) "
            f"with data.num_folds set (data.num_folds={num_folds})"
        )
    outer_folds, outer_fold = data.get("outer_folds"), data.get("outer_fold")
    if (outer_folds is None) != (outer_fold is None) or (
        outer_folds is not None and not (_integer(outer_fold) and 0 <= outer_fold < outer_folds)
    ):
        raise ConfigError(
            f"data.outer_fold={outer_fold!r} is not allowed: data.outer_folds and data.outer_fold are set together, "
            f"data.outer_fold an integer in [0, data.outer_folds) (data.outer_folds={outer_folds})"
        )
    if data.get("refit"):
        _check_no_validation(cfg, num_folds)
    if data.get("prefetch_factor") is not None and not data.get("num_workers"):
        raise ConfigError("data.prefetch_factor needs worker processes: set data.num_workers >= 1")
    if data.get("device_resident") and data.get("num_workers"):
        raise ConfigError(
            f"data.num_workers={data.num_workers} applies to DataLoaders: set data.device_resident=false to use them"
        )
    if OmegaConf.select(cfg, "model.tbptt_steps"):
        _check_manual_optimisation(cfg)
    precision = str(OmegaConf.select(cfg, "trainer.precision", default=""))
    if (
        OmegaConf.select(cfg, "optimizer.fused")
        and OmegaConf.select(cfg, "trainer.gradient_clip_val")
        and (precision.endswith("-mixed") or precision == "16")
    ):
        # Lightning's mixed-precision plugin refuses to clip the gradients of an optimizer that unscales inside
        # its step, which fused ones do (lightning.pytorch.plugins.precision.amp.MixedPrecision.clip_gradients)
        raise ConfigError(
            f"trainer.gradient_clip_val with trainer.precision={precision}: Lightning cannot clip the gradients of a "
            "fused optimizer under mixed precision; set optimizer.fused=false"
        )
    if (
        OmegaConf.select(cfg, "trainer.strategy") == "fsdp"
        and OmegaConf.select(cfg, "trainer.gradient_clip_val")
        and OmegaConf.select(cfg, "trainer.gradient_clip_algorithm") == "norm"
    ):
        # Lightning's FSDPPrecision raises at the first step otherwise (seen on an H100, 2026-11-23)
        raise ConfigError(
            "trainer.gradient_clip_algorithm=norm with trainer=fsdp: Lightning cannot clip sharded gradients by "
            "norm; set trainer.gradient_clip_val=null or trainer.gradient_clip_algorithm=value"
        )
    for key in ("finetune.init_from", "distill.teacher"):
        path = OmegaConf.select(cfg, key)
        if path is not None and not Path(path).is_file():
            raise ConfigError(f"{key}={path!r}: no such file")
    if OmegaConf.select(cfg, "finetune.unfreeze_at_epoch") is not None and not OmegaConf.select(
        cfg, "finetune.freeze_backbone"
    ):
        raise ConfigError("finetune.unfreeze_at_epoch unfreezes a frozen backbone: set finetune.freeze_backbone=true")
    if cfg.get("test") and data.get("test_fraction") == 0:
        raise ConfigError("data.test_fraction=0 leaves no test split: set data.test_fraction > 0 or test=false")
    ckpt_path = cfg.get("ckpt_path")
    # eval.py also takes a cross-validated run dir
    if ckpt_path is not None and not (Path(ckpt_path).is_file() or (not training and Path(ckpt_path).is_dir())):
        raise ConfigError(f"ckpt_path={ckpt_path!r}: no such file")
    if ckpt_path is not None and cfg.get("resume") == "auto":
        raise ConfigError("ckpt_path and resume=auto both choose the checkpoint to resume from: set only one")
    if not cfg.get("train", True) and ckpt_path is None and "train" in cfg:
        raise ConfigError("train=false evaluates a trained model: set ckpt_path=PATH/TO.ckpt")


def _check_manual_optimisation(cfg: DictConfig) -> None:
    """model.tbptt_steps steps the optimizer and the LR schedule itself, once per chunk: what Lightning's automatic
    loop or the per-batch training step would do is refused rather than silently skipped."""
    not_applied = {
        "trainer.gradient_clip_val": bool(OmegaConf.select(cfg, "trainer.gradient_clip_val")),
        "trainer.accumulate_grad_batches > 1": OmegaConf.select(cfg, "trainer.accumulate_grad_batches", default=1) > 1,
        "scheduler=plateau": "plateau" in str(OmegaConf.select(cfg, "scheduler._target_", default="")),
        "distill.teacher": bool(OmegaConf.select(cfg, "distill.teacher")),
        "adversarial.attack": bool(OmegaConf.select(cfg, "adversarial.attack")),
    }
    refused = [key for key, is_set in not_applied.items() if is_set]
    if refused:
        raise ConfigError(
            f"model.tbptt_steps optimises manually, one step per chunk: {', '.join(refused)} "
            "not applied there; unset them"
        )


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


@contextmanager
def reported_errors():
    """Turn a ReportedError into one clear line on stderr and exit status 1 (as Hydra's own errors), no traceback;
    HYDRA_FULL_ERROR=1 shows the traceback, as it does for Hydra's own errors."""
    try:
        yield
    except ReportedError as error:
        if os.environ.get("HYDRA_FULL_ERROR") == "1" or in_multirun():
            raise  # under -m the sweeper records this job as failed and the sweep goes on
        raise SystemExit(f"error: {error}") from None


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
