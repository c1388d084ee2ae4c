"""LR schedules, each `(optimizer, total_steps, warmup_steps, **knobs) -> Lightning lr_scheduler config`.

Every schedule is stepped once per optimizer step (`interval: step`), so step sizes and cycle lengths are
counted in optimizer steps, and any schedule composes with a linear warmup over its first `warmup_steps`:
the LR rises linearly from 1/warmup_steps of the schedule's starting LR to that LR (lr for step, exponential,
cosine and plateau; lr / div_factor for onecycle; base_lr for cyclic), then the schedule runs over the
remaining steps. tests/test_schedules.py checks every trace against its formula.
`total_steps` comes from the Trainer (`estimated_stepping_batches`) at `configure_optimizers` time.
"""

import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import (
    CosineAnnealingLR,
    CyclicLR,
    ExponentialLR,
    LambdaLR,
    LinearLR,
    LRScheduler,
    OneCycleLR,
    ReduceLROnPlateau,
    SequentialLR,
    StepLR,
)

from hyperlab.config.rules import DECAY_SHAPES
from hyperlab.config.schedule_rules import cooldown_start
from hyperlab.errors import choose
from hyperlab.training.branches import decay_start_of


def _warmup(optimizer: Optimizer, warmup_steps: int) -> LinearLR:
    # factor 1/w at step 0 rising linearly to 1 at step w: never a zero LR on the first step.
    return LinearLR(optimizer, start_factor=1.0 / warmup_steps, end_factor=1.0, total_iters=warmup_steps)


def with_warmup(optimizer: Optimizer, schedule: LRScheduler, warmup_steps: int) -> dict:
    """`schedule` after `warmup_steps` of linear warmup, as a per-step Lightning lr_scheduler config."""
    if warmup_steps > 0:
        schedule = SequentialLR(optimizer, [_warmup(optimizer, warmup_steps), schedule], [warmup_steps])
    return {"scheduler": schedule, "interval": "step"}


def _stepswith_warmup(total_steps: int, warmup_steps: int) -> int:
    if not 0 <= warmup_steps < total_steps:
        raise ValueError(f"scheduler.warmup_steps={warmup_steps} must be in [0, {total_steps}) for this run")
    return total_steps - warmup_steps


def step(optimizer, total_steps, warmup_steps=0, step_size=100, gamma=0.5):
    _stepswith_warmup(total_steps, warmup_steps)
    return with_warmup(optimizer, StepLR(optimizer, step_size=step_size, gamma=gamma), warmup_steps)


def exponential(optimizer, total_steps, warmup_steps=0, gamma=0.995):
    _stepswith_warmup(total_steps, warmup_steps)
    return with_warmup(optimizer, ExponentialLR(optimizer, gamma=gamma), warmup_steps)


def cosine(optimizer, total_steps, warmup_steps=0, eta_min=0.0):
    t_max = _stepswith_warmup(total_steps, warmup_steps)
    return with_warmup(optimizer, CosineAnnealingLR(optimizer, T_max=t_max, eta_min=eta_min), warmup_steps)


def onecycle(
    optimizer, total_steps, warmup_steps=0, pct_start=0.3, div_factor=25.0, final_div_factor=1e4, anneal_strategy="cos"
):
    steps = _stepswith_warmup(total_steps, warmup_steps)
    max_lr = [group["lr"] for group in optimizer.param_groups]
    cycle = OneCycleLR(
        optimizer,
        max_lr=max_lr,
        total_steps=steps,
        pct_start=pct_start,
        div_factor=div_factor,
        final_div_factor=final_div_factor,
        anneal_strategy=anneal_strategy,
    )
    return with_warmup(optimizer, cycle, warmup_steps)


def cyclic(optimizer, total_steps, warmup_steps=0, base_lr=1e-4, step_size_up=50, mode="triangular"):
    _stepswith_warmup(total_steps, warmup_steps)
    max_lr = [group["lr"] for group in optimizer.param_groups]
    # cycle_momentum=False: Adam-family optimizers have no `momentum` key to cycle.
    cycle = CyclicLR(
        optimizer, base_lr=base_lr, max_lr=max_lr, step_size_up=step_size_up, mode=mode, cycle_momentum=False
    )
    return with_warmup(optimizer, cycle, warmup_steps)


def plateau(optimizer, total_steps, warmup_steps=0, monitor="val/loss", mode="min", factor=0.5, patience=2, min_lr=0.0):
    """Reduce-on-plateau is driven by a metric once per epoch, so it cannot sit inside SequentialLR:
    the warmup runs beside it as a second, per-step scheduler (both scale the same param groups)."""
    _stepswith_warmup(total_steps, warmup_steps)
    reduce = ReduceLROnPlateau(optimizer, mode=mode, factor=factor, patience=patience, min_lr=min_lr)
    configs = [{"scheduler": reduce, "interval": "epoch", "monitor": monitor}]
    if warmup_steps > 0:
        configs.insert(0, {"scheduler": _warmup(optimizer, warmup_steps), "interval": "step"})
    return configs


def wsd_factor(t: int, total: int, warmup: int, decay_start: int, shape: str) -> float:
    """The LR multiplier at optimizer step t: linear warmup (as every schedule here), 1 until `decay_start`, then
    down to 0 at `total`: 1 - p (linear) or 1 - sqrt(p) (1-sqrt), p the fraction of the cooldown done."""
    if t < warmup:
        return 1.0 / warmup + (1.0 - 1.0 / warmup) * t / warmup
    if t < decay_start or decay_start >= total:  # a stable run (decay_fraction=0) never decays
        return 1.0
    p = min(1.0, (t - decay_start) / (total - decay_start))
    return 1.0 - (p if shape == "linear" else math.sqrt(p))


def wsd(
    optimizer,
    total_steps,
    warmup_steps=0,
    decay_fraction=0.2,
    decay_shape="1-sqrt",
    decay_from=None,
    save_at=None,
    budgets=None,
):
    """Warmup-stable-decay (Hägele et al. 2024, "Scaling laws and compute-optimal training beyond fixed training
    durations"): a constant LR, then a cooldown over the last `decay_fraction` of the run, which matches cosine at
    that length without committing to it before the run starts. With `decay_fraction=0` the run is a stable run:
    it never decays, and `save_at` (read by hyperlab.training.branches) saves its state at chosen steps.
    `decay_from`: a stable run's checkpoint; this run resumes it and the cooldown runs from that checkpoint's step
    to `total_steps` (a cooldown branch). `budgets`: the branches that train() runs for you (training.branches).

    One LambdaLR over a closure: a resumed branch restores the step count but keeps this run's own formula (a
    closure is not part of the scheduler's state_dict), and there is no SequentialLR state to get out of step."""
    choose("scheduler.decay_shape", decay_shape, DECAY_SHAPES)
    if decay_from is not None:
        decay_start = decay_start_of(decay_from, total_steps, warmup_steps)
    else:
        if not 0 <= decay_fraction <= 1:
            raise ValueError(f"scheduler.decay_fraction={decay_fraction} must be in [0, 1]")
        decay_start = cooldown_start(total_steps, decay_fraction)
        if decay_start < warmup_steps:
            raise ValueError(
                f"scheduler.decay_fraction={decay_fraction}: the cooldown's {total_steps - decay_start} steps and "
                f"scheduler.warmup_steps={warmup_steps} overlap in this run of {total_steps} optimizer steps"
            )
    factor = _bound_factor(total_steps, warmup_steps, decay_start, decay_shape)
    return {"scheduler": LambdaLR(optimizer, factor), "interval": "step"}


def _bound_factor(total: int, warmup: int, decay_start: int, shape: str):
    def factor(t: int) -> float:  # a plain closure: LambdaLR's state_dict stores None for it (see wsd)
        return wsd_factor(t, total, warmup, decay_start, shape)

    return factor
