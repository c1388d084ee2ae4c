"""`train(cfg)`: the one place that reads the composed config and wires objects together.

train.py (Hydra) -> check(cfg) -> train(cfg): build data, network, LightningModule, callbacks, loggers and
Trainer from their config groups; fit; score the best checkpoint on val and test; write metrics.json.
"""

import copy
import functools
import inspect
import os
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import lightning as L
import torch
from hydra.utils import get_class, instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import WandbLogger
from omegaconf import DictConfig, OmegaConf, read_write

from hyperlab import compression, console, interpret, parametrization, robust, runs, throughput
from hyperlab.callbacks import CheckMonitors, RestoreRNG, StopOnNonFiniteLoss, StoreRunConfig
from hyperlab.checkpoints import check_matches, load_checkpoint
from hyperlab.config import ConfigError, in_multirun, key_errors
from hyperlab.finetune import FreezeBackbone, load_initial_weights
from hyperlab.supervised import Supervised

console.quiet_lightning()


def _entries(group: DictConfig | None) -> list[tuple[str, DictConfig]]:
    """The instantiable entries of a dict-of-objects group (callbacks, logger); `null` entries are dropped."""
    return [(name, node) for name, node in (group or {}).items() if node is not None and "_target_" in node]


def build_module(cfg: DictConfig) -> tuple[L.LightningDataModule, Supervised]:
    """Data first: the network's input shape, output size and the loss's class counts are read from it."""
    with key_errors("augment", cfg.get("augment")):
        augment = instantiate(cfg.augment) if cfg.get("augment") else None
    with key_errors("data", cfg.data):
        datamodule = instantiate(cfg.data, **({"augment": augment} if augment is not None else {}))
        datamodule.setup("fit")  # the splits, now: a bad split setting fails before the model is built
    if augment is not None:
        with key_errors("augment", cfg.augment):
            augment.prepare(datamodule.input_shape)
    with key_errors("loss", cfg.loss):
        loss = build_loss(cfg.loss, datamodule)
    token_data = {"vocab_size": datamodule.vocab_size} if datamodule.vocab_size else {}
    if token_data and "vocab_size" not in inspect.signature(get_class(cfg.model._target_)).parameters:
        raise ConfigError("this dataset is token ids for language modelling: use model=lstm or model=transformer")
    net_outputs = loss.out_features(datamodule.num_classes)
    with key_errors("model", cfg.model):
        net = instantiate(cfg.model, in_shape=datamodule.input_shape, num_classes=net_outputs, **token_data)
    check_task_options(cfg, datamodule.task)
    finetune = cfg.get("finetune") or {}
    if finetune.get("init_from"):  # warm start; cold start (the seeded init) otherwise
        load_initial_weights(net, finetune.init_from, finetune.get("scope", "all"))
    if cfg.get("quantize") == "static":  # find out now, not after training, whether the network allows it
        try:
            compression.prepare_static(net, datamodule.splits["train"].tensors[0][:2])
        except Exception as error:
            raise ConfigError(
                f"quantize=static: {type(net).__name__} cannot be prepared for static quantisation "
                f"({type(error).__name__}: {error}); use quantize=dynamic"
            ) from error
    if cfg.get("compile"):
        net.compile()  # nn.Module.compile: compiled at the first call, on the device; state_dict keys unchanged
    tbptt_steps = getattr(net, "tbptt_steps", None)
    scheduler = factory("scheduler", cfg.scheduler) if cfg.get("scheduler") else None
    regularization = cfg.get("regularization") or {}
    module = Supervised(
        net,
        loss,
        optimizer=factory("optimizer", cfg.optimizer),
        scheduler=scheduler,
        task=datamodule.task,
        num_classes=datamodule.num_classes,
        l1=regularization.get("l1", 0.0),
        l2=regularization.get("l2", 0.0),
        no_decay_bias_norm=cfg.get("no_decay_bias_norm", False),
        tbptt_steps=tbptt_steps,
        **distillation_args(cfg.get("distill"), net, datamodule),
        adversary=adversary(cfg.get("adversarial")),
        bytes_per_token=getattr(datamodule, "bytes_per_token", None),
        lr_scales=mup_lr_scales(cfg, net, in_shape=datamodule.input_shape, num_classes=net_outputs, **token_data),
    )
    return datamodule, module


def mup_lr_scales(cfg: DictConfig, net: torch.nn.Module, **shape) -> dict[str, float] | None:
    """muP's learning-rate multiplier per parameter (hyperlab.parametrization) when model.parametrization=mup:
    the network rebuilt at model.base_width tells which of its dimensions grow with width."""
    if cfg.model.get("parametrization", "standard") != "mup":
        return None
    base = instantiate(cfg.model, width=cfg.model.base_width, **shape)
    optimizer_class = get_class(cfg.optimizer._target_)
    return parametrization.lr_scales(net, base, cfg.model.width / cfg.model.base_width, optimizer_class)


def factory(prefix: str, node: DictConfig) -> functools.partial:
    """The optimizer or scheduler factory of a `_partial_` config. Lightning calls it in configure_optimizers, on
    the real parameters on their device, before the sanity check and the first step; whatever the constructor
    refuses there (`optimizer.momentum=-0.5`) is reported as a ConfigError naming the key."""
    return functools.partial(_naming_keys, prefix, node, built(prefix, node))


def _naming_keys(prefix: str, node: DictConfig, partial, *args, **kwargs):
    with key_errors(prefix, node):
        return partial(*args, **kwargs)


def check_task_options(cfg: DictConfig, task: str) -> None:
    """Options that need class labels over float inputs, refused for other tasks before anything trains."""
    for key in ("adversarial.attack", "interpret.samples"):
        value = OmegaConf.select(cfg, key)
        if value and task != "classification":
            raise ConfigError(f"{key}={value} needs a classification task; data.task={task}")
    if cfg.get("quantize") and task != "classification":
        raise ConfigError(f"quantize={cfg.quantize} scores the int8 copy's accuracy: not for data.task={task}")
    if OmegaConf.select(cfg, "interpret.samples") and "CrossEntropy" not in cfg.loss._target_:
        raise ConfigError("interpret.samples attributes one logit per class: it needs loss=cross_entropy")


def distillation_args(distill: DictConfig | None, net: torch.nn.Module, datamodule) -> dict:
    """The teacher network of `distill.teacher` (another run's checkpoint, rebuilt from its own config)."""
    if not distill or not distill.get("teacher"):
        return {}
    from hyperlab.evaluate import load_module  # a teacher is a whole trained run

    _, teacher = load_module(distill.teacher)
    sample = datamodule.splits["train"].tensors[0][:2]
    student_shape, teacher_shape = net(sample).shape, teacher.net(sample).shape
    if student_shape != teacher_shape:
        raise ConfigError(
            f"distill.teacher={distill.teacher!r} outputs {tuple(teacher_shape)[1:]} per sample, this network "
            f"{tuple(student_shape)[1:]}: teacher and student must predict the same classes"
        )
    return {"teacher": teacher.net, "temperature": distill.temperature, "alpha": distill.alpha}


def adversary(adversarial: DictConfig | None):
    """The attack that replaces each training batch with its adversarial version (adversarial.train), or None."""
    if not adversarial or not adversarial.get("attack") or not adversarial.get("train"):
        return None
    return functools.partial(
        robust.perturb, attack=adversarial.attack, epsilon=adversarial.epsilon, steps=adversarial.steps
    )


def build_loss(loss_cfg: DictConfig, datamodule) -> torch.nn.Module:
    """The loss, checked against the data's task; `class_weights: balanced` reads the train split's counts."""
    loss_cls = get_class(loss_cfg._target_)
    if datamodule.task not in loss_cls.tasks:
        name = loss_cls.__name__
        raise ConfigError(
            f"loss {name} does not fit data.task={datamodule.task}; losses for it: "
            + {"regression": "loss=mse", "classification": "loss=cross_entropy, loss=bce"}.get(
                datamodule.task, "loss=cross_entropy"
            )
        )
    if loss_cfg.get("class_weights") is None:
        return instantiate(loss_cfg)
    counts = torch.bincount(datamodule.train_targets, minlength=datamodule.num_classes)
    return instantiate(loss_cfg, class_counts=counts)


def build_trainer(cfg: DictConfig, config: dict) -> L.Trainer:
    callbacks = [built(f"callbacks.{name}", node) for name, node in _entries(cfg.get("callbacks"))] + [
        StoreRunConfig(config),
        RestoreRNG(),
        StopOnNonFiniteLoss(),
        CheckMonitors(cfg.get("optimized_metric")),
    ]
    if OmegaConf.select(cfg, "finetune.freeze_backbone"):
        callbacks.append(FreezeBackbone(cfg.finetune.unfreeze_at_epoch, cfg.finetune.backbone_lr_scale))
    if OmegaConf.select(cfg, "trial.number") is not None:  # a job of the study sweeper: report to its trial
        from hyperlab.study import ReportToTrial  # optuna loads only for sweeps

        callbacks.append(ReportToTrial(**cfg.trial))
    loggers = [start_logger(name, node) for name, node in _entries(cfg.get("logger"))]
    # no ModelCheckpoint configured means no checkpoints: Lightning would otherwise add one of its own
    checkpointing = any(isinstance(c, ModelCheckpoint) for c in callbacks)
    with key_errors("trainer", cfg.trainer):
        return instantiate(
            cfg.trainer, callbacks=callbacks, logger=loggers or False, enable_checkpointing=checkpointing
        )


def built(prefix: str, node: DictConfig):
    """`instantiate(node)`, a constructor's refusal naming its key under `prefix` (config.key_errors)."""
    with key_errors(prefix, node):
        return instantiate(node)


def start_logger(name: str, node: DictConfig):
    """Loggers open their files or runs lazily, at the first metric; open them now, so that an unwritable
    directory or an unreachable tracking store fails at start, not at the end of an epoch."""
    logger = built(f"logger.{name}", node)
    try:
        _ = logger.experiment
    except Exception as error:
        raise ConfigError(f"logger.{name} cannot start: {type(error).__name__}: {error}") from error
    return logger


def resume_checkpoint(cfg: DictConfig, output_dir: Path) -> str | None:
    if cfg.resume == "auto":
        found = runs.find_resume_checkpoint(output_dir)
        return str(found) if found else None
    return cfg.ckpt_path if cfg.train else None


def flops_per_sample(net: torch.nn.Module, sample: torch.Tensor) -> int:
    """Forward FLOPs for one sample, a (1, ...) batch (torch.utils.flop_counter counts matmuls and convolutions)."""
    from torch.utils.flop_counter import FlopCounterMode

    was_training = net.training
    net.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net(sample.to(next(net.parameters()).device))
    net.train(was_training)
    return counter.get_total_flops()


def peak_memory_mb() -> float:
    """Peak CUDA memory allocated by torch, or on CPU the process's peak resident set (imports included)."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        return round(torch.cuda.max_memory_allocated() / 2**20, 1)
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # Linux reports KiB


def finish_loggers(trainer: L.Trainer) -> None:
    """Lightning leaves the W&B run open; under `-m` the next job in this process would log into it."""
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger) and logger._experiment is not None:
            logger.experiment.finish()


@contextmanager
def one_job_per_ddp_launch(output_dir: Path) -> Iterator[None]:
    """Under `-m`, make Lightning's DDP children run this job only, then leave the process clean for the next.

    Lightning's DDP launcher starts each child with `sys.argv[1:]` and `hydra.run.dir=<HydraConfig run.dir>`:
    under `-m` that would re-run the whole sweep in every rank (each sampling its own parameters) and write
    outside the job's directory. The children get this job's own overrides and directory instead; afterwards the
    process group and the environment variables Lightning set (LOCAL_RANK, WORLD_SIZE, MASTER_PORT, ...) go,
    else the next job of the sweep would take itself for a child.
    """
    from hydra.core.hydra_config import HydraConfig

    if not in_multirun():
        yield
        return
    hydra_cfg = HydraConfig.get()
    argv, environ, run_dir = list(sys.argv), dict(os.environ), hydra_cfg.run.dir
    # hydra.* overrides too (e.g. hydra.searchpath), but not hydra.mode=MULTIRUN: a child runs one job
    hydra_overrides = [o for o in hydra_cfg.overrides.hydra if not o.startswith("hydra.mode=")]
    sys.argv = [argv[0], *hydra_overrides, *hydra_cfg.overrides.task]
    with read_write(hydra_cfg):
        hydra_cfg.run.dir = str(output_dir)
    try:
        yield
    finally:
        sys.argv = argv
        with read_write(hydra_cfg):
            hydra_cfg.run.dir = run_dir
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
        os.environ.clear()
        os.environ.update(environ)


def tune(tune_cfg: DictConfig | None, trainer: L.Trainer, module: Supervised, datamodule) -> dict:
    """Lightning's tuner before fit: the largest batch size that runs (power scaling) and the LR finder's
    suggestion; both are then used for training and written to metrics.json."""
    if not tune_cfg or not (tune_cfg.get("batch_size") or tune_cfg.get("lr")):
        return {}
    from lightning.pytorch.tuner import Tuner

    tuner, tuned = Tuner(trainer), {}
    if tune_cfg.batch_size:
        tuned["tune/batch_size"] = tuner.scale_batch_size(module, datamodule=datamodule, mode="power", max_trials=6)
    if tune_cfg.lr:
        finder = tuner.lr_find(module, datamodule=datamodule, num_training=50, update_attr=True, attr_name="lr")
        tuned["tune/lr"] = module.lr = finder.suggestion()
    return tuned


def after_fit(cfg: DictConfig, module: Supervised, datamodule, output_dir: Path) -> dict:
    """Figures of the scored (best) weights beyond the metrics: sparsity, an int8 copy, robust accuracy,
    attributions."""
    net, extra = module.net, {"model/sparsity": round(compression.sparsity(module.net), 6)}
    if not (cfg.get("quantize") or OmegaConf.select(cfg, "adversarial.attack") or cfg.interpret.samples):
        return extra
    test_x, test_y = datamodule.splits["test"].tensors[:2]
    if cfg.get("quantize"):
        if cfg.quantize == "static":  # calibrated on the first 512 training rows
            quantized = compression.quantize_static_int8(net, datamodule.splits["train"].tensors[0][:512].split(64))
        else:
            quantized = compression.quantize_dynamic_int8(net)
        torch.save(quantized.state_dict(), output_dir / "model_int8.pt")
        with torch.no_grad():
            predicted = module.loss.scores(quantized(test_x.cpu())).argmax(1)
        extra.update(
            {
                "model/size_mb": round(compression.serialized_mb(net.state_dict()), 4),
                "quant/size_mb": round((output_dir / "model_int8.pt").stat().st_size / 2**20, 4),
                "quant/test_acc": (predicted == test_y).float().mean().item(),
            }
        )
    attack = OmegaConf.select(cfg, "adversarial.attack")
    if attack:
        a = cfg.adversarial
        batches = [(test_x.to(module.device), test_y.to(module.device))]
        extra["test/adv_acc"] = robust.robust_accuracy(
            net, module.loss, batches, attack, a.epsilon, a.steps, module.loss.scores
        )
    samples = OmegaConf.select(cfg, "interpret.samples") or 0
    if samples:
        x, y = test_x[:samples].to(module.device), test_y[:samples].to(module.device)
        attributions = interpret.integrated_gradients(net, x, y)
        interpret.save(attributions, x, y, output_dir)
        extra["interpret/features_90"] = round(interpret.features_for_mass(attributions, 0.9), 4)
    return extra


def fit_and_score(cfg: DictConfig, trainer: L.Trainer, module: Supervised, datamodule, ckpt_path: str | None):
    """Fit, then score the best checkpoint when one was kept, else (callbacks=none, debug=fdr) the final weights."""
    start = time.perf_counter()
    if cfg.train:
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    train_s = time.perf_counter() - start
    checkpoint = trainer.checkpoint_callback
    best = checkpoint.best_model_path if checkpoint is not None and checkpoint.best_model_path else None
    score_ckpt = best or (None if cfg.train else cfg.ckpt_path)
    metrics = {}
    if not OmegaConf.select(cfg, "data.refit"):  # a refit has no val split
        metrics.update(trainer.validate(module, datamodule=datamodule, ckpt_path=score_ckpt, verbose=False)[0])
    if cfg.test:
        metrics.update(trainer.test(module, datamodule=datamodule, ckpt_path=score_ckpt, verbose=False)[0])
    # the epoch whose weights are scored: a model selection refits for as many epochs (hyperlab.refit)
    best_epoch = (
        load_checkpoint(best, mmap=True)["epoch"] if best else (trainer.current_epoch - 1 if cfg.train else None)
    )
    return {**metrics, "ckpt/best": best, "trainer/best_epoch": best_epoch}, train_s


def train_once(cfg: DictConfig) -> dict:
    """One training run: fit, score, write metrics.json into `paths.output_dir`; returns the metrics."""
    output_dir = Path(cfg.paths.output_dir)
    L.seed_everything(cfg.seed, workers=True)  # before the network is built: init depends on it
    torch.set_float32_matmul_precision(cfg.matmul_precision)
    ckpt_path = resume_checkpoint(cfg, output_dir)
    if cfg.resume == "auto" and ckpt_path and OmegaConf.select(cfg, "callbacks.model_checkpoint"):
        # Continue the same run: Lightning reloads its best-k bookkeeping only when the checkpoint dir is
        # unchanged, and a new dir would forget a best epoch from before the interruption. Safe here because
        # resume=auto always starts from last.ckpt, the newest state of that run. An explicit ckpt_path= forks
        # into this run's own dir instead and leaves the old run's files untouched.
        cfg.callbacks.model_checkpoint.dirpath = str(Path(ckpt_path).parent)
    config = OmegaConf.to_container(cfg, resolve=True)
    datamodule, module = build_module(cfg)  # every constructor's refusal names its key (config.key_errors)
    trainer = build_trainer(cfg, config)
    if ckpt_path:  # a corrupt file or another model's weights: say so now, not inside Lightning's restore
        check_matches(module, load_checkpoint(ckpt_path, mmap=True), ckpt_path)
    for logger in trainer.loggers:
        logger.log_hyperparams(config)

    with one_job_per_ddp_launch(output_dir):
        tuned = tune(cfg.get("tune"), trainer, module, datamodule)
        metrics, train_s = fit_and_score(cfg, trainer, module, datamodule, ckpt_path)
    metrics.update(tuned)
    if trainer.is_global_zero:  # under DDP one rank writes the int8 copy and the attributions
        metrics.update(after_fit(cfg, module, datamodule, output_dir))

    metrics.update(
        {
            "trainer/global_step": trainer.global_step,
            "trainer/epoch": trainer.current_epoch,
            "time/train_s": round(train_s, 3),
            "model/params": sum(p.numel() for p in module.net.parameters()),
            "model/flops": flops_per_sample(module.net, datamodule.example_input()),
            "memory/peak_mb": peak_memory_mb(),
            "ckpt/resumed_from": ckpt_path,
            **runs.provenance(Path(cfg.paths.root_dir)),
            **getattr(datamodule, "provenance", {}),  # token data: its files, their hash, token and byte counts
        }
    )
    if datamodule.task == "language_model":
        metrics.update(throughput.language_model(trainer, datamodule.example_input(), metrics["model/flops"], train_s))
    if trainer.is_global_zero:
        runs.write_metrics(output_dir, metrics)
    finish_loggers(trainer)
    return metrics


def cross_validate(cfg: DictConfig, num_folds: int) -> dict:
    """`data.num_folds=K` with no `data.fold`: train fold k in `<run>/fold_k/` for every k. The run's metrics.json
    holds each fold's metrics under `folds` and, for every val/* and test/* key, the mean over folds (under the
    key itself, so sweepers optimise the mean), the sample standard deviation (`<key>_std`) and the standard
    error of the mean (`<key>_se` = std / sqrt(K), the one-standard-error rule's yardstick). In a study, the
    running mean of the monitored metric is reported after each fold, so the pruner can stop a trial after its
    first folds (hyperlab.study.FoldReports)."""
    output_dir = Path(cfg.paths.output_dir)
    reports = fold_reports(cfg.trial)
    folds = []
    for k in range(num_folds):
        fold_cfg = copy.deepcopy(cfg)
        fold_cfg.data.fold = k
        fold_cfg.paths.output_dir = str(output_dir / f"fold_{k}")
        fold_cfg.trial.number = None  # the folds report as a whole, below: no per-epoch steps
        (output_dir / f"fold_{k}").mkdir(parents=True, exist_ok=True)
        folds.append(train_once(fold_cfg))
        if reports is not None:
            reports.report(folds)
    scored = [key for key, value in folds[0].items() if key.startswith(("val/", "test/")) and value is not None]
    metrics = {key: statistics.fmean(f[key] for f in folds) for key in scored}
    metrics.update({f"{key}_std": statistics.stdev(f[key] for f in folds) for key in scored})
    metrics.update({f"{key}_se": metrics[f"{key}_std"] / num_folds**0.5 for key in scored})
    kept = [*scored, "ckpt/best", "trainer/global_step", "trainer/best_epoch"]
    metrics.update(
        {
            "folds": [{key: f[key] for key in kept} for f in folds],
            "data/num_folds": num_folds,
            "time/train_s": round(sum(f["time/train_s"] for f in folds), 3),
            **{key: folds[0][key] for key in ("model/params", "model/flops", "versions", "python", "git", "command")},
            "memory/peak_mb": max(f["memory/peak_mb"] for f in folds),
        }
    )
    runs.write_metrics(output_dir, metrics)
    return metrics


def fold_reports(trial: DictConfig | None):
    """The study trial a cross-validated job reports its folds to, or None outside a study."""
    if not trial or trial.get("number") is None:
        return None
    from hyperlab.study import FoldReports  # optuna loads only for sweeps

    return FoldReports(**trial)


def train(cfg: DictConfig) -> float | None:
    """Train as configured (all k folds when `data.num_folds` is set); return `optimized_metric` for sweepers."""
    num_folds = OmegaConf.select(cfg, "data.num_folds")
    if num_folds and OmegaConf.select(cfg, "data.fold") is None:
        metrics = cross_validate(cfg, num_folds)
    else:
        metrics = train_once(cfg)
    if cfg.optimized_metric is not None and cfg.optimized_metric not in metrics:
        known = sorted(k for k in metrics if k.startswith(("val/", "test/")))
        raise ConfigError(f"optimized_metric={cfg.optimized_metric!r} was not logged; logged: {', '.join(known)}")
    console.say(console.run_summary(metrics, cfg.paths.output_dir, cfg.optimized_metric))
    return None if cfg.optimized_metric is None else metrics[cfg.optimized_metric]
