"""Config-time checks, run before torch is imported: bad input costs a second, not a training run.

`RULES` holds one value rule per key (type and range); `CROSS_KEY_CHECKS` the constraints between keys, each a
small named function. Every constraint lives here once: the constructors downstream trust a checked config.
`check(cfg)` raises a ConfigError (one line naming the key and what is allowed) for the first rule broken.
"""

import math
from dataclasses import fields
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from hyperlab.config.schedule_rules import SCHEDULE_CHECKS
from hyperlab.config.schema import TrainConfig
from hyperlab.errors import ConfigError

RESUME_MODES = ("never", "auto")
DATA_TASKS = ("classification", "regression", "language_model")
SAMPLERS = ("weighted", "oversample", "undersample", "smote")  # data.sampler
OUTLIER_METHODS = ("isolation_forest",)
TOKENIZERS = ("bpe", "bytes")  # data.tokenizer (data=stdlib)
PARAMETRIZATIONS = ("standard", "mup")  # model.parametrization
# On/off knobs: OmegaConf passes `model.tie_weights=yes` through as the string 'yes', which Python reads as true
# and `=False`-looking typos ('flase') as true too; a boolean knob takes true or false and nothing else.
BOOLEAN_KEYS = (
    "data.normalize",
    "data.stratify",
    "data.shuffle",
    "data.drop_nan_rows",
    "data.drop_duplicates",
    "data.device_resident",
    "data.pin_memory",
    "data.persistent_workers",
    "model.tie_weights",
    "model.activation_checkpointing",
    "model.channels_last",
    "model.spectral_norm",
    "model.pool",
    "model.stem",
    "model.downsample",
    "finetune.freeze_backbone",
    "adversarial.train",
    "tune.batch_size",
    "tune.lr",
)


def _number(value) -> bool:
    """A finite int or float: `lr=inf` or `model.dropout=nan` is never a setting, it is a typo or a bug."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def is_integer(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _names(value) -> bool:
    """A list of non-empty strings (column names, file paths)."""
    listed = isinstance(value, (list, tuple)) or OmegaConf.is_list(value)
    return listed and all(isinstance(v, str) and v != "" for v in value)


def _ascending_steps(value) -> bool:
    listed = isinstance(value, (list, tuple)) or OmegaConf.is_list(value)
    steps = list(value) if listed else []
    return bool(steps) and all(is_integer(s) and s >= 1 for s in steps) and steps == sorted(set(steps))


def _kernel_sizes(value) -> bool:
    listed = isinstance(value, (list, tuple)) or OmegaConf.is_list(value)
    return listed and len(value) >= 1 and all(is_integer(k) and k >= 1 for k in value)


DECAY_SHAPES = ("linear", "1-sqrt")  # scheduler.decay_shape (hyperlab.training.schedules.wsd)
MATMUL_PRECISIONS = ("highest", "high", "medium")  # torch.set_float32_matmul_precision

# (key, rule, what is allowed). Keys absent from the composed config (e.g. a model without dropout) are skipped.
RULES = [
    ("matmul_precision", lambda v: v in MATMUL_PRECISIONS, " | ".join(MATMUL_PRECISIONS)),
    ("lr", lambda v: _number(v) and v > 0, "a number > 0"),
    ("weight_decay", lambda v: _number(v) and v >= 0, "a number >= 0"),
    ("batch_size", lambda v: is_integer(v) and v >= 1, "an integer >= 1"),
    ("min_train_steps", lambda v: v is None or (is_integer(v) and v >= 1), "null or an integer >= 1"),
    ("data.batch_size", lambda v: is_integer(v) and v >= 1, "an integer >= 1"),
    # val/* metrics drive checkpoints, early stopping and sweeps: the validation split cannot be empty
    ("data.val_fraction", lambda v: _number(v) and 0 < v < 1, "a number in (0, 1)"),
    ("data.test_fraction", lambda v: _number(v) and 0 <= v < 1, "a number in [0, 1)"),
    ("data.num_workers", lambda v: is_integer(v) and v >= 0, "an integer >= 0"),
    ("data.split_seed", lambda v: is_integer(v) and v >= 0, "an integer >= 0"),
    ("model.dropout", lambda v: _number(v) and 0 <= v < 1, "a number in [0, 1)"),
    ("model.depth", lambda v: is_integer(v) and v >= 0, "an integer >= 0"),
    ("model.width", lambda v: is_integer(v) and v >= 1, "an integer >= 1"),
    ("trainer.max_epochs", lambda v: v is None or (is_integer(v) and (v >= 1 or v == -1)), "an integer >= 1, or -1"),
    ("trainer.max_steps", lambda v: is_integer(v) and (v >= 1 or v == -1), "an integer >= 1, or -1 (no limit)"),
    ("trainer.accumulate_grad_batches", lambda v: is_integer(v) and v >= 1, "an integer >= 1"),
    ("trainer.gradient_clip_algorithm", lambda v: v in ("norm", "value"), "norm or value"),
    # Lightning takes a negative clip value and clips every gradient to it: not what anyone means
    ("trainer.gradient_clip_val", lambda v: v is None or (_number(v) and v >= 0), "null or a number >= 0"),
    ("callbacks.early_stopping.patience", lambda v: is_integer(v) and v >= 0, "an integer >= 0"),
    ("callbacks.rich_progress_bar.every_n_batches", lambda v: is_integer(v) and v >= 1, "an integer >= 1"),
    ("callbacks.model_checkpoint.write_every_s", lambda v: _number(v) and v >= 0, "a number >= 0 (seconds)"),
    ("scheduler.warmup_steps", lambda v: is_integer(v) and v >= 0, "an integer >= 0"),
    # torch's StepLR/ExponentialLR take gamma=0 (the LR is 0 from the first decay on) and gamma < 0
    ("scheduler.gamma", lambda v: _number(v) and v > 0, "a number > 0"),
    ("scheduler.step_size", lambda v: is_integer(v) and v >= 1, "an integer >= 1"),
    ("scheduler.decay_fraction", lambda v: _number(v) and 0 <= v <= 1, "a number in [0, 1]"),
    ("scheduler.decay_shape", lambda v: v in DECAY_SHAPES, " | ".join(DECAY_SHAPES)),
    ("scheduler.decay_from", lambda v: v is None or (isinstance(v, str) and v != ""), "null or a stable run's .ckpt"),
    ("scheduler.save_at", lambda v: v is None or _ascending_steps(v), "null or ascending integers >= 1 (steps)"),
    ("scheduler.budgets", lambda v: v is None or _ascending_steps(v), "null or ascending integers >= 1 (steps)"),
    ("data.num_folds", lambda v: v is None or (is_integer(v) and v >= 2), "null or an integer >= 2"),
    ("data.outer_folds", lambda v: v is None or (is_integer(v) and v >= 2), "null or an integer >= 2"),
    ("data.refit", lambda v: isinstance(v, bool), "true or false"),
    ("data.task", lambda v: v in DATA_TASKS, " | ".join(DATA_TASKS)),
    ("data.sampler", lambda v: v in (None, *SAMPLERS), "null | " + " | ".join(SAMPLERS)),
    ("data.outliers", lambda v: v in (None, *OUTLIER_METHODS), "null | " + " | ".join(OUTLIER_METHODS)),
    ("data.outlier_fraction", lambda v: _number(v) and 0 < v <= 0.5, "a number in (0, 0.5]"),
    ("data.imbalance", lambda v: v is None or (_number(v) and 0 < v <= 1), "null or a number in (0, 1]"),
    ("data.smooth_sigma", lambda v: _number(v) and v >= 0, "a number >= 0 (0 = off)"),
    ("data.prefetch_factor", lambda v: v is None or (is_integer(v) and v >= 1), "null or an integer >= 1"),
    ("data.fit_rows", lambda v: is_integer(v) and v >= 1, "an integer >= 1"),
    ("data.channels", lambda v: v in (1, 3), "1 (greyscale) or 3 (RGB)"),
    ("data.image_size", lambda v: len(v) == 2 and all(is_integer(s) and s >= 1 for s in v), "[H, W], integers >= 1"),
    ("data.stats_samples", lambda v: is_integer(v) and v >= 1, "an integer >= 1"),
    ("data.convert", lambda v: isinstance(v, bool), "true or false"),
    ("data.skip_undecodable", lambda v: isinstance(v, bool), "true or false"),
    ("data.max_categories", lambda v: is_integer(v) and v >= 2, "an integer >= 2"),
    ("data.min_frequency", lambda v: is_integer(v) and v >= 1, "an integer >= 1"),
    ("data.eval_batch_size", lambda v: is_integer(v) and v >= 1, "an integer >= 1"),
    ("data.shuffle_seed", lambda v: is_integer(v) and v >= 0, "an integer >= 0"),
    # data=table: the columns
    ("data.target", lambda v: isinstance(v, str) and v != "", "a column name"),
    ("data.features", lambda v: v is None or _names(v), "null or a list of column names"),
    ("data.split_column", lambda v: v is None or (isinstance(v, str) and v != ""), "null or a column name"),
    # data=stdlib (token data)
    ("data.tokenizer", lambda v: v in TOKENIZERS, " | ".join(TOKENIZERS)),
    ("data.vocab_size", lambda v: is_integer(v) and 256 < v <= 2**16, "an integer in (256, 65536] (uint16 shards)"),
    ("data.context", lambda v: is_integer(v) and v >= 1, "an integer >= 1 (tokens per window)"),
    ("data.batches_per_epoch", lambda v: is_integer(v) and v >= 1, "an integer >= 1"),
    ("data.eval_windows", lambda v: v is None or (is_integer(v) and v >= 1), "null (all) or an integer >= 1"),
    ("data.paths", lambda v: v is None or _names(v), "null (the standard library) or a list of files and folders"),
    # data=mnist1d
    ("data.load.num_samples", lambda v: is_integer(v) and v >= 10, "an integer >= 10"),
    ("data.load.train_split", lambda v: _number(v) and 0 < v < 1, "a number in (0, 1)"),
    ("data.load.seed", lambda v: is_integer(v) and v >= 0, "an integer >= 0"),
    ("data.load.seq_len", lambda v: is_integer(v) and v >= 1, "an integer >= 1 (characters per window)"),
    ("loss.label_smoothing", lambda v: _number(v) and 0 <= v < 1, "a number in [0, 1)"),
    ("regularization.l1", lambda v: _number(v) and v >= 0, "a number >= 0"),
    ("regularization.l2", lambda v: _number(v) and v >= 0, "a number >= 0"),
    ("model.tbptt_steps", lambda v: v is None or (is_integer(v) and v >= 1), "null or an integer >= 1"),
    ("finetune.scope", lambda v: v in ("all", "backbone"), "all or backbone"),
    ("finetune.unfreeze_at_epoch", lambda v: v is None or (is_integer(v) and v >= 0), "null or an integer >= 0"),
    ("finetune.backbone_lr_scale", lambda v: _number(v) and v > 0, "a number > 0"),
    ("distill.temperature", lambda v: _number(v) and v > 0, "a number > 0"),
    ("distill.alpha", lambda v: _number(v) and 0 <= v <= 1, "a number in [0, 1]"),
    ("adversarial.attack", lambda v: v in (None, "fgsm", "pgd"), "null | fgsm | pgd"),
    ("adversarial.epsilon", lambda v: _number(v) and v > 0, "a number > 0"),
    ("adversarial.steps", lambda v: is_integer(v) and v >= 1, "an integer >= 1"),
    ("quantize", lambda v: v in (None, "dynamic", "static"), "null, dynamic or static"),
    ("metrics.val", lambda v: v in ("lean", "full"), "lean | full"),
    ("trial.steps", lambda v: v in ("epoch", "percent"), "epoch | percent"),
    ("interpret.samples", lambda v: is_integer(v) and v >= 0, "an integer >= 0"),
    ("model.blocks", lambda v: is_integer(v) and v >= 1, "an integer >= 1"),
    ("model.kernel_sizes", lambda v: v is None or _kernel_sizes(v), "null or a list of integers >= 1"),
    ("model.base_width", lambda v: is_integer(v) and v >= 1, "an integer >= 1"),
    ("model.heads", lambda v: is_integer(v) and v >= 1, "an integer >= 1"),
    ("model.output_multiplier", lambda v: _number(v) and v > 0, "a number > 0"),
    ("model.init_std", lambda v: _number(v) and v > 0, "a number > 0"),
    ("model.embedding_lr_multiplier", lambda v: _number(v) and v > 0, "a number > 0"),
    ("model.parametrization", lambda v: v in PARAMETRIZATIONS, " | ".join(PARAMETRIZATIONS)),
    *((key, lambda v: isinstance(v, bool), "true or false") for key in BOOLEAN_KEYS),
    ("resume", lambda v: v in RESUME_MODES, " or ".join(RESUME_MODES)),
    ("optimized_metric", lambda v: v is None or str(v).startswith(("val/", "test/")), "null or a val/* or test/* key"),
]

_ABSENT = object()


def _select(cfg: DictConfig, key: str, default=None):
    return OmegaConf.select(cfg, key, default=default)


# --- cross-key checks: each takes the whole config and raises ConfigError when its constraint is broken ---------


def known_top_level_keys(cfg: DictConfig) -> None:
    """`+typo=1` force-adds a key nothing reads: refuse it rather than train without the intended change."""
    if OmegaConf.get_type(cfg) is not TrainConfig:  # eval.py's config has keys of its own
        return
    known = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(cfg) - known)
    if unknown:
        raise ConfigError(f"unknown top-level key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")


def required_values_set(cfg: DictConfig) -> None:
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise ConfigError(f"required value(s) not set: {', '.join(missing)} (e.g. {missing[0]}=...)")


def value_rules(cfg: DictConfig, only: str | None = None) -> None:
    """RULES, in order (or only `only`'s); keys absent from the composed config (e.g. a model without dropout) are
    skipped."""
    for key, rule, allowed in RULES:
        if only is not None and key != only:
            continue
        value = _select(cfg, key, _ABSENT)
        if value is not _ABSENT and not rule(value):
            raise ConfigError(f"{key}={value!r} is not allowed: must be {allowed}")


def split_fractions_leave_a_train_split(cfg: DictConfig) -> None:
    data = cfg.get("data") or {}
    if "val_fraction" in data and data.val_fraction + data.test_fraction >= 1:
        raise ConfigError(
            f"data.val_fraction={data.val_fraction} + data.test_fraction={data.test_fraction} "
            "must sum to < 1 (the rest is the train split)"
        )


def fold_within_folds(cfg: DictConfig) -> None:
    num_folds, fold = _select(cfg, "data.num_folds"), _select(cfg, "data.fold")
    if fold is not None and not (num_folds and is_integer(fold) and 0 <= fold < num_folds):
        raise ConfigError(
            f"data.fold={fold!r} is not allowed: must be null or an integer in [0, data.num_folds) "
            f"with data.num_folds set (data.num_folds={num_folds})"
        )


def outer_fold_within_outer_folds(cfg: DictConfig) -> None:
    outer_folds, outer_fold = _select(cfg, "data.outer_folds"), _select(cfg, "data.outer_fold")
    if (outer_folds is None) != (outer_fold is None) or (
        outer_folds is not None and not (is_integer(outer_fold) and 0 <= outer_fold < outer_folds)
    ):
        raise ConfigError(
            f"data.outer_fold={outer_fold!r} is not allowed: data.outer_folds and data.outer_fold are set together, "
            f"data.outer_fold an integer in [0, data.outer_folds) (data.outer_folds={outer_folds})"
        )


def refit_has_no_validation(cfg: DictConfig) -> None:
    """data.refit=true leaves no val split: nothing may cross-validate, monitor or optimise a val/* metric."""
    if not _select(cfg, "data.refit"):
        return
    num_folds = _select(cfg, "data.num_folds")
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


def class_options_need_classes(cfg: DictConfig) -> None:
    """Stratified splits, class-balanced sampling and long-tailed variants read class labels."""
    task = _select(cfg, "data.task")
    if task is None or task == "classification":
        return
    for key in ("data.stratify", "data.sampler", "data.imbalance"):
        if _select(cfg, key):
            raise ConfigError(
                f"{key}={_select(cfg, key)!r} needs class labels, but data.task={task}: set it to false/null"
            )


def smoothing_needs_images(cfg: DictConfig) -> None:
    sigma = _select(cfg, "data.smooth_sigma")
    if sigma and not _select(cfg, "data.image_shape"):
        raise ConfigError(f"data.smooth_sigma={sigma} blurs images: it needs data.image_shape=[C,H,W]")


def loader_knobs_need_loaders(cfg: DictConfig) -> None:
    if _select(cfg, "data.prefetch_factor") is not None and not _select(cfg, "data.num_workers"):
        raise ConfigError("data.prefetch_factor needs worker processes: set data.num_workers >= 1")
    if _select(cfg, "data.device_resident") and _select(cfg, "data.num_workers"):
        raise ConfigError(
            f"data.num_workers={cfg.data.num_workers} applies to DataLoaders: set data.device_resident=false "
            "to use them"
        )


def manual_optimisation_applies_its_knobs(cfg: DictConfig) -> None:
    """model.tbptt_steps steps the optimizer and the LR schedule itself, once per chunk: what Lightning's automatic
    loop or the per-batch training step would do is refused rather than silently skipped."""
    if not _select(cfg, "model.tbptt_steps"):
        return
    not_applied = {
        "trainer.gradient_clip_val": bool(_select(cfg, "trainer.gradient_clip_val")),
        "trainer.accumulate_grad_batches > 1": _select(cfg, "trainer.accumulate_grad_batches", 1) > 1,
        "scheduler=plateau": "plateau" in str(_select(cfg, "scheduler._target_", "")),
        "distill.teacher": bool(_select(cfg, "distill.teacher")),
        "adversarial.attack": bool(_select(cfg, "adversarial.attack")),
    }
    refused = [key for key, is_set in not_applied.items() if is_set]
    if refused:
        raise ConfigError(
            f"model.tbptt_steps optimises manually, one step per chunk: {', '.join(refused)} "
            "not applied there; unset them"
        )


def clipping_fits_the_precision(cfg: DictConfig) -> None:
    precision = str(_select(cfg, "trainer.precision", ""))
    clip = _select(cfg, "trainer.gradient_clip_val")
    if _select(cfg, "optimizer.fused") and clip and (precision.endswith("-mixed") or precision == "16"):
        # Lightning's mixed-precision plugin refuses to clip the gradients of an optimizer that unscales inside
        # its step, which fused ones do (lightning.pytorch.plugins.precision.amp.MixedPrecision.clip_gradients)
        raise ConfigError(
            f"trainer.gradient_clip_val with trainer.precision={precision}: Lightning cannot clip the gradients of a "
            "fused optimizer under mixed precision; set optimizer.fused=false"
        )
    norm_clipped = clip and _select(cfg, "trainer.gradient_clip_algorithm") == "norm"
    if _select(cfg, "trainer.strategy") == "fsdp" and norm_clipped:
        # Lightning's FSDPPrecision raises at the first step otherwise (seen on an H100, 2026-11-23)
        raise ConfigError(
            "trainer.gradient_clip_algorithm=norm with trainer=fsdp: Lightning cannot clip sharded gradients by "
            "norm; set trainer.gradient_clip_val=null or trainer.gradient_clip_algorithm=value"
        )


def weight_files_exist(cfg: DictConfig) -> None:
    for key in ("finetune.init_from", "distill.teacher"):
        path = _select(cfg, key)
        if path is not None and not Path(path).is_file():
            raise ConfigError(f"{key}={path!r}: no such file")
    if _select(cfg, "finetune.unfreeze_at_epoch") is not None and not _select(cfg, "finetune.freeze_backbone"):
        raise ConfigError("finetune.unfreeze_at_epoch unfreezes a frozen backbone: set finetune.freeze_backbone=true")


def data_files_exist(cfg: DictConfig) -> None:
    """A table's, an image folder's or a corpus's files (data=table, images, stdlib), before anything is read."""
    for key in ("data.path", "data.test_path", "data.val_path"):
        path = _select(cfg, key)
        if isinstance(path, str) and not Path(path).exists():
            raise ConfigError(f"{key}={path!r}: no such file or folder")
    for path in _select(cfg, "data.paths") or ():
        if not Path(path).exists():
            raise ConfigError(f"data.paths: {path!r}: no such file or folder")


def heads_divide_the_width(cfg: DictConfig) -> None:
    """Attention splits the model dimension into model.heads equal parts, at model.width and, under muP, at the
    base width the standard parametrization is taken from."""
    heads = _select(cfg, "model.heads")
    if not heads:
        return
    widths = ["model.width"] + (["model.base_width"] if _select(cfg, "model.parametrization") == "mup" else [])
    for key in widths:
        if _select(cfg, key) % heads:
            raise ConfigError(f"{key}={_select(cfg, key)} must be a multiple of model.heads={heads}")


def streamed_tables_take_no_in_memory_knobs(cfg: DictConfig) -> None:
    """data=table data.convert=true streams a shard: what needs every row in memory is refused, not ignored."""
    if not (_select(cfg, "data.convert") and str(_select(cfg, "data._target_", "")).endswith("table_data")):
        return
    in_memory = {"data.sampler": None, "data.imbalance": None, "data.outliers": None, "data.drop_duplicates": False}
    for key, default in in_memory.items():
        if _select(cfg, key, default) != default:
            raise ConfigError(f"{key}={_select(cfg, key)!r} needs the table in memory: set data.convert=false")


def testing_needs_a_test_split(cfg: DictConfig) -> None:
    if cfg.get("test") and _select(cfg, "data.test_fraction") == 0:
        raise ConfigError("data.test_fraction=0 leaves no test split: set data.test_fraction > 0 or test=false")


def one_training_length(cfg: DictConfig) -> None:
    """min_train_steps raises trainer.max_epochs from the data; a trainer.max_steps would end the run elsewhere."""
    max_steps = _select(cfg, "trainer.max_steps", -1)
    if cfg.get("min_train_steps") is not None and max_steps not in (None, -1):
        raise ConfigError(
            f"min_train_steps={cfg.min_train_steps} and trainer.max_steps={max_steps} both set the training length: "
            "set one (min_train_steps raises the whole epochs; trainer.max_steps stops mid-epoch)"
        )


def checkpoint_to_start_from(cfg: DictConfig) -> None:
    """ckpt_path names a file (eval.py also takes a cross-validated run or sweep dir); resume=auto finds its own."""
    training = OmegaConf.get_type(cfg) is TrainConfig
    ckpt_path = cfg.get("ckpt_path")
    if ckpt_path is not None and not (Path(ckpt_path).is_file() or (not training and Path(ckpt_path).is_dir())):
        raise ConfigError(f"ckpt_path={ckpt_path!r}: no such file")
    if ckpt_path is not None and cfg.get("resume") == "auto":
        raise ConfigError("ckpt_path and resume=auto both choose the checkpoint to resume from: set only one")
    if not cfg.get("train", True) and ckpt_path is None and "train" in cfg:
        raise ConfigError("train=false evaluates a trained model: set ckpt_path=PATH/TO.ckpt")


CROSS_KEY_CHECKS = [
    known_top_level_keys,
    required_values_set,
    value_rules,
    split_fractions_leave_a_train_split,
    fold_within_folds,
    outer_fold_within_outer_folds,
    refit_has_no_validation,
    class_options_need_classes,
    smoothing_needs_images,
    loader_knobs_need_loaders,
    manual_optimisation_applies_its_knobs,
    clipping_fits_the_precision,
    weight_files_exist,
    data_files_exist,
    heads_divide_the_width,
    *SCHEDULE_CHECKS,
    streamed_tables_take_no_in_memory_knobs,
    testing_needs_a_test_split,
    one_training_length,
    checkpoint_to_start_from,
]


def check(cfg: DictConfig) -> None:
    """Raise ConfigError for the first value that breaks a rule, before anything is built or trained."""
    for rule in CROSS_KEY_CHECKS:
        rule(cfg)
