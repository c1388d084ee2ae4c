"""Config-time checks of the LR schedule against the run's length: a warm-up that never ends, a cooldown that
does not fit, saves and budgets a stable run cannot branch from (scheduler=wsd, hyperlab.training.branches).
Each takes the whole config and raises a ConfigError naming the key; config.rules runs them with its others."""

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from hyperlab.errors import ConfigError


def _select(cfg: DictConfig, key: str, default=None):
    return OmegaConf.select(cfg, key, default=default)


def cooldown_start(total_steps: int, decay_fraction: float) -> int:
    """The step a WSD run of `total_steps` starts its cooldown at: its last `decay_fraction` of steps cool down
    (hyperlab.training.schedules.wsd; a budget's stable part, hyperlab.training.branches)."""
    return total_steps - round(decay_fraction * total_steps)


def run_length(cfg: DictConfig) -> tuple[int | None, str | None]:
    """The run's optimizer steps when the config alone fixes them (trainer.max_steps, or token data's fixed batches
    per epoch), with the keys that say so; (None, None) when only the data's size will tell."""
    max_steps, max_epochs = _select(cfg, "trainer.max_steps", -1), _select(cfg, "trainer.max_epochs")
    batches = _select(cfg, "data.batches_per_epoch")
    if max_steps and max_steps > 0:
        return max_steps, f"trainer.max_steps={max_steps}"
    if batches and max_epochs and max_epochs > 0:
        per_step = _select(cfg, "trainer.accumulate_grad_batches", 1)
        source = f"trainer.max_epochs={max_epochs} x data.batches_per_epoch={batches} / {per_step} accumulated"
        return max_epochs * batches // per_step, source
    return None, None


def warmup_ends_before_the_run(cfg: DictConfig) -> None:
    """A warm-up as long as the run never reaches the schedule: refused when the run's length is known."""
    warmup = _select(cfg, "scheduler.warmup_steps") or 0
    total, source = run_length(cfg)
    if total is not None and warmup >= total:
        raise ConfigError(f"scheduler.warmup_steps={warmup} must be < the run's {total} optimizer steps ({source})")


def cooldown_fits_the_run(cfg: DictConfig) -> None:
    """scheduler=wsd: the warm-up and the cooldown (the last decay_fraction of the run) must not overlap."""
    fraction = _select(cfg, "scheduler.decay_fraction")
    total, source = run_length(cfg)
    if fraction is None or total is None or _select(cfg, "scheduler.decay_from") or _select(cfg, "scheduler.budgets"):
        return
    warmup = _select(cfg, "scheduler.warmup_steps") or 0
    start = cooldown_start(total, fraction)
    if start < warmup:
        raise ConfigError(
            f"scheduler.decay_fraction={fraction}: a cooldown of {total - start} steps and "
            f"scheduler.warmup_steps={warmup} overlap in the run's {total} optimizer steps ({source})"
        )


def branches_are_consistent(cfg: DictConfig) -> None:
    """A branch resumes a stable run (decay_fraction=0) from one checkpoint; budgets need a cooldown to branch."""
    decay_from, budgets = _select(cfg, "scheduler.decay_from"), _select(cfg, "scheduler.budgets")
    save_at, fraction = _select(cfg, "scheduler.save_at"), _select(cfg, "scheduler.decay_fraction")
    if decay_from is not None:
        if not Path(decay_from).is_file():
            raise ConfigError(f"scheduler.decay_from={decay_from!r}: no such file")
        for key, value in (("ckpt_path", cfg.get("ckpt_path")), ("scheduler.budgets", budgets)):
            if value:
                raise ConfigError(f"scheduler.decay_from and {key} both choose where this run starts: set only one")
        if cfg.get("resume") == "auto":
            raise ConfigError("scheduler.decay_from and resume=auto both choose where this run starts: set only one")
        if _select(cfg, "callbacks.early_stopping"):
            # and Lightning, resumed at an epoch's end with max_steps set, re-runs that epoch's end without val/*
            raise ConfigError(
                "scheduler.decay_from runs a cooldown to trainer.max_steps, which early stopping would cut: "
                "set callbacks.early_stopping=null"
            )
    if save_at and fraction:
        raise ConfigError(
            f"scheduler.save_at with scheduler.decay_fraction={fraction}: a branch resumes a stable run; set "
            "scheduler.decay_fraction=0 for the run that saves"
        )
    if budgets and not fraction:
        raise ConfigError("scheduler.budgets branches a cooldown off a stable run: set scheduler.decay_fraction > 0")


def saves_end_an_epoch(cfg: DictConfig) -> None:
    """Token data fixes its epoch (data.batches_per_epoch): each save, and each budget's stable part, must end one
    (hyperlab.training.branches says why); other data is checked when its epoch length is known, before step 1."""
    batches = _select(cfg, "data.batches_per_epoch")
    fraction = _select(cfg, "scheduler.decay_fraction") or 0
    if not batches:
        return
    per_epoch = batches // _select(cfg, "trainer.accumulate_grad_batches", 1)
    saves = [("scheduler.save_at", step) for step in _select(cfg, "scheduler.save_at") or ()]
    for budget in _select(cfg, "scheduler.budgets") or ():  # the branch's start and its end
        saves += [("scheduler.budgets", cooldown_start(budget, fraction)), ("scheduler.budgets", budget)]
    warmup = _select(cfg, "scheduler.warmup_steps") or 0
    for key, step in saves:
        if step % per_epoch or step < warmup:
            raise ConfigError(
                f"{key}={list(_select(cfg, key))}: step {step} (a save, or a branch's start or end) must end an epoch "
                f"({per_epoch} optimizer steps: data.batches_per_epoch={batches}) and follow "
                f"scheduler.warmup_steps={warmup}"
            )


SCHEDULE_CHECKS = [warmup_ends_before_the_run, cooldown_fits_the_run, branches_are_consistent, saves_end_an_epoch]
