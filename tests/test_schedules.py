"""Each scheduler option's LR trace, step by step, against its closed-form formula (warmup included)."""

import math

import pytest
import torch

from hyperlab.training import schedules

LR, TOTAL = 0.1, 40


def trace(make, steps: int = TOTAL, **knobs) -> list[float]:
    """The LR each optimizer step uses, stepping the scheduler after every step as Lightning does."""
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=LR)
    config = make(optimizer, TOTAL, **knobs)
    scheduler = config["scheduler"]
    lrs = []
    for _ in range(steps):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


def warmup_lr(t: int, w: int, target: float) -> float:
    return target * (1 / w + (1 - 1 / w) * t / w)


@pytest.mark.parametrize("w", [0, 5])
def test_step(w):
    lrs = trace(schedules.step, warmup_steps=w, step_size=10, gamma=0.5)
    expected = [warmup_lr(t, w, LR) if t < w else LR * 0.5 ** ((t - w) // 10) for t in range(TOTAL)]
    assert lrs == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("w", [0, 5])
def test_exponential(w):
    lrs = trace(schedules.exponential, warmup_steps=w, gamma=0.9)
    expected = [warmup_lr(t, w, LR) if t < w else LR * 0.9 ** (t - w) for t in range(TOTAL)]
    assert lrs == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("w", [0, 8])
def test_cosine(w):
    eta_min, span = 1e-3, TOTAL - w
    lrs = trace(schedules.cosine, warmup_steps=w, eta_min=eta_min)
    expected = [
        warmup_lr(t, w, LR) if t < w else eta_min + (LR - eta_min) * (1 + math.cos(math.pi * (t - w) / span)) / 2
        for t in range(TOTAL)
    ]
    assert lrs == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("w", [0, 8])
def test_onecycle(w):
    """Warmup ramps to the cycle's starting LR (lr / div_factor); the cycle peaks at lr and ends near 0."""
    div, final_div, pct = 10.0, 100.0, 0.25
    lrs = trace(
        schedules.onecycle,
        warmup_steps=w,
        pct_start=pct,
        div_factor=div,
        final_div_factor=final_div,
        anneal_strategy="linear",
    )
    start, span = LR / div, TOTAL - w
    peak_step = w + round(pct * span) - 1
    assert lrs[:w] == pytest.approx([warmup_lr(t, w, start) for t in range(w)], rel=1e-6)
    assert lrs[w] == pytest.approx(start, rel=1e-6)
    assert lrs[peak_step] == pytest.approx(LR, rel=1e-6)
    assert max(lrs) == pytest.approx(LR, rel=1e-6)
    assert lrs[-1] == pytest.approx(start / final_div, rel=1e-6)


@pytest.mark.parametrize("w", [0, 4])
def test_cyclic(w):
    base, half = 0.01, 6
    lrs = trace(schedules.cyclic, warmup_steps=w, base_lr=base, step_size_up=half)
    triangle = [base + (LR - base) * (1 - abs((s % (2 * half)) / half - 1)) for s in range(TOTAL - w)]
    assert lrs[w:] == pytest.approx(triangle, rel=1e-6)
    assert lrs[:w] == pytest.approx([warmup_lr(t, w, base) for t in range(w)], rel=1e-6)


def test_plateau_with_warmup():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=LR)
    warmup, plateau = schedules.plateau(optimizer, TOTAL, warmup_steps=4, factor=0.5, patience=1)
    assert (warmup["interval"], plateau["interval"], plateau["monitor"]) == ("step", "epoch", "val/loss")
    lrs = []
    for _ in range(4):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        warmup["scheduler"].step()
    assert lrs == pytest.approx([warmup_lr(t, 4, LR) for t in range(4)], rel=1e-6)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(LR)
    for _ in range(3):  # a flat metric: best at epoch 0, then patience=1 runs out at epoch 2
        plateau["scheduler"].step(1.0)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(LR * 0.5)


def test_warmup_longer_than_run_is_rejected():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=LR)
    with pytest.raises(ValueError, match=r"scheduler.warmup_steps=40 must be in \[0, 40\)"):
        schedules.cosine(optimizer, TOTAL, warmup_steps=40)


@pytest.mark.parametrize("shape", ["linear", "1-sqrt"])
@pytest.mark.parametrize("w", [0, 5])
def test_wsd_warms_up_holds_then_cools_down_to_zero(shape, w):
    """Every phase of warmup-stable-decay against its formula: warmup, lr until the last decay_fraction of the
    run, then lr (1 - p) or lr (1 - sqrt p), p the share of the cooldown done (TOTAL=40, fraction 0.25: 10 steps)."""
    lrs = trace(schedules.wsd, steps=TOTAL + 1, warmup_steps=w, decay_fraction=0.25, decay_shape=shape)
    decay = {"linear": lambda p: 1 - p, "1-sqrt": lambda p: 1 - math.sqrt(p)}[shape]
    expected = [warmup_lr(t, w, LR) if t < w else LR if t < 30 else LR * decay((t - 30) / 10) for t in range(TOTAL + 1)]
    assert lrs == pytest.approx(expected, rel=1e-6, abs=1e-12)
    assert lrs[29] == LR and lrs[31] < LR and lrs[TOTAL] == 0.0  # the cooldown starts at 30 and ends at 0


def test_a_stable_wsd_run_never_decays():
    assert trace(schedules.wsd, steps=TOTAL + 3, decay_fraction=0.0) == [LR] * (TOTAL + 3)


def test_wsd_refuses_a_cooldown_overlapping_the_warmup():
    with pytest.raises(ValueError, match="decay_fraction=0.9.*overlap"):
        trace(schedules.wsd, warmup_steps=10, decay_fraction=0.9)


@pytest.mark.parametrize("shape", ["linear", "1-sqrt"])
def test_a_cooldown_branch_decays_from_its_checkpoints_step_to_the_runs_end(shape, tmp_path):
    """scheduler.decay_from: the cooldown starts at the stable checkpoint's step (10), whatever decay_fraction
    says (0.2 of 15 would start it at 12), and reaches 0 at the run's end."""
    checkpoint = tmp_path / "step_000010.ckpt"
    torch.save({"global_step": 10, "hyperlab_config": {}}, checkpoint)
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=LR)
    config = schedules.wsd(optimizer, 15, warmup_steps=2, decay_shape=shape, decay_from=str(checkpoint))
    factor = config["scheduler"].lr_lambdas[0]
    decay = {"linear": lambda p: 1 - p, "1-sqrt": lambda p: 1 - math.sqrt(p)}[shape]
    expected = [warmup_lr(t, 2, 1.0) if t < 2 else 1.0 if t < 10 else decay((t - 10) / 5) for t in range(16)]
    assert [factor(t) for t in range(16)] == pytest.approx(expected)
