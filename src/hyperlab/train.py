"""`train(cfg)`: read the composed config once, build each object from its node, fit, score, write metrics.json.

train.py (Hydra) -> config.rules.check(cfg) -> train(cfg) -> train_once(cfg): the data module and LightningModule
(hyperlab.builders.module), the Trainer (hyperlab.builders.trainer); fit; score the best checkpoint on val and
test; the after-fit analyses; metrics.json. Every capability lives in a module of its own; this one wires.
"""

import copy
import time
from pathlib import Path

import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf

from hyperlab import console, runs
from hyperlab.analysis.after_fit import after_fit
from hyperlab.builders import build_module, build_trainer, run_callbacks
from hyperlab.builders.hardware import refuse_missing_hardware
from hyperlab.builders.trainer import finish_loggers
from hyperlab.errors import ConfigError
from hyperlab.training import measure, small_validation, step_budget
from hyperlab.training.branches import branch_checkpoint, train_budgets
from hyperlab.training.checkpoints import check_matches, load_checkpoint, resume_from
from hyperlab.training.cross_validation import cross_validate
from hyperlab.training.ddp_launch import one_job_per_ddp_launch
from hyperlab.training.tuner import tune

console.quiet_lightning()


def train(cfg: DictConfig) -> float | None:
    """Train as configured (all k folds when `data.num_folds` is set); return `optimized_metric` for sweepers."""
    refuse_missing_hardware(cfg.trainer)
    num_folds = cfg.data.get("num_folds")
    if cfg.scheduler and cfg.scheduler.get("budgets"):  # one stable run and a cooldown branch per budget

        def train_with(changes: dict) -> dict:
            part = copy.deepcopy(cfg)
            for key, value in changes.items():
                OmegaConf.update(part, key, value, force_add=True)
            return train_once(part)

        metrics = train_budgets(cfg.scheduler, Path(cfg.paths.output_dir), train_with)
    elif num_folds and cfg.data.get("fold") is None:

        def train_fold(k: int, fold_dir: Path) -> dict:
            fold_cfg = copy.deepcopy(cfg)
            fold_cfg.data.fold, fold_cfg.paths.output_dir = k, str(fold_dir)
            # multi-fidelity: fold 0 reports each epoch (as % of its epochs), later folds as a whole (FoldReports)
            fold_cfg.trial.number, fold_cfg.trial.steps = (cfg.trial.number if k == 0 else None), "percent"
            return train_once(fold_cfg)

        metrics = cross_validate(num_folds, Path(cfg.paths.output_dir), train_fold, cfg.trial)
    else:
        metrics = train_once(cfg)
    if cfg.optimized_metric is not None and cfg.optimized_metric not in metrics:
        known = sorted(k for k in metrics if k.startswith(("val/", "test/")))
        raise ConfigError(f"optimized_metric={cfg.optimized_metric!r} was not logged; logged: {', '.join(known)}")
    console.say(console.run_summary(metrics, cfg.paths.output_dir, cfg.optimized_metric))
    return None if cfg.optimized_metric is None else metrics[cfg.optimized_metric]


def train_once(cfg: DictConfig) -> dict:
    """One training run: fit, score, write metrics.json into `paths.output_dir`; returns the metrics."""
    output_dir = Path(cfg.paths.output_dir)
    L.seed_everything(cfg.seed, workers=True)  # before the network is built: init depends on it
    torch.set_float32_matmul_precision(cfg.matmul_precision)
    ckpt_path = resume_from(cfg.resume, cfg.ckpt_path, cfg.train, output_dir)
    if cfg.resume == "auto" and ckpt_path and (cfg.callbacks or {}).get("model_checkpoint"):
        # Continue the same run: Lightning reloads its best-k bookkeeping only when the checkpoint dir is
        # unchanged, and a new dir would forget a best epoch from before the interruption. Safe here because
        # resume=auto always starts from last.ckpt, the newest state of that run. An explicit ckpt_path= forks
        # into this run's own dir instead and leaves the old run's files untouched.
        cfg.callbacks.model_checkpoint.dirpath = str(Path(ckpt_path).parent)
    config = OmegaConf.to_container(cfg, resolve=True)
    ckpt_path = branch_checkpoint((cfg.scheduler or {}).get("decay_from"), config) or ckpt_path  # a cooldown branch
    datamodule, module = build_module(cfg)  # every constructor's refusal names its key (config.key_errors)
    small_validation.warn_if_small(datamodule, cfg.data.get("num_folds"))
    step_budget.raise_epochs(cfg.trainer, cfg.get("min_train_steps"), datamodule)  # small data: more epochs
    ours = run_callbacks(config, cfg.optimized_metric, cfg.finetune, cfg.trial)
    trainer = build_trainer(cfg.trainer, cfg.callbacks, cfg.logger, ours)
    if ckpt_path:  # a corrupt file or another model's weights: say so now, not inside Lightning's restore
        check_matches(module, load_checkpoint(ckpt_path, mmap=True), ckpt_path)
    for logger in trainer.loggers:
        logger.log_hyperparams(config)

    with one_job_per_ddp_launch(output_dir):
        tuned = tune(cfg.tune, trainer, module, datamodule)
        start = time.perf_counter()
        if cfg.train:
            trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
        train_s = time.perf_counter() - start
        metrics = score(
            trainer, module, datamodule, None if cfg.train else cfg.ckpt_path, cfg.data.get("refit"), cfg.test
        )
    metrics.update(tuned)
    if trainer.is_global_zero:  # under DDP one rank writes the int8 copy and the attributions
        samples = (cfg.interpret or {}).get("samples") or 0
        metrics.update(after_fit(module, datamodule, output_dir, cfg.quantize, cfg.adversarial, samples))
    metrics.update(measure.run_figures(trainer, module.net, datamodule.example_input(), train_s, datamodule.task))
    metrics.update(
        {
            "ckpt/resumed_from": ckpt_path,
            **{f"data/{split}_rows": rows for split, rows in datamodule.split_sizes().items()},
            **runs.provenance(Path(cfg.paths.root_dir)),
            **getattr(datamodule, "provenance", {}),  # token data: its files, their hash, token and byte counts
        }
    )
    if trainer.is_global_zero:
        runs.write_metrics(output_dir, metrics)
    finish_loggers(trainer)
    return metrics


def score(trainer: L.Trainer, module, datamodule, trained: str | None, refit: bool, test: bool) -> dict:
    """Val and test metrics of the best checkpoint when one was kept, else (callbacks=none, debug=fdr) of the final
    weights, or of `trained` (train=false ckpt_path=...). A refit has no val split; `test=false` skips the test."""
    checkpoint = trainer.checkpoint_callback
    best = checkpoint.best_model_path if checkpoint is not None and checkpoint.best_model_path else None
    scored = best or trained
    metrics = {}
    if not refit:
        metrics.update(trainer.validate(module, datamodule=datamodule, ckpt_path=scored, verbose=False)[0])
    if test:
        metrics.update(trainer.test(module, datamodule=datamodule, ckpt_path=scored, verbose=False)[0])
    # the epoch whose weights are scored: a model selection refits for as many epochs (hyperlab.search.refit)
    fitted = trainer.current_epoch - 1 if trained is None else None
    best_epoch = load_checkpoint(best, mmap=True)["epoch"] if best else fitted
    return {**metrics, "ckpt/best": best, "trainer/best_epoch": best_epoch}
