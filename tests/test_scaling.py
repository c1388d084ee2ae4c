"""Scaling-law fits (hyperlab.search.scaling_laws) on synthetic points whose laws are known."""

import math

import numpy as np
import pytest

from hyperlab.search.scaling_laws import bootstrap_power_law, fit_loss_law, fit_power_law, grid_optimum

RNG = np.random.default_rng(0)
N = np.repeat([1e5, 3e5, 1e6, 3e6], 3)
D = np.tile([1e7, 3e7, 1e8], 4)


def noisy(y, sd=0.02):
    return y * np.exp(RNG.normal(0, sd, len(y)))


def test_a_power_law_in_n_and_d_recovers_its_exponents_within_5_percent():
    eta = noisy(0.3118 * N**-0.5 * D**-0.2)
    law = fit_power_law(eta, N=N, D=D)
    assert law.exponents["N"] == pytest.approx(-0.5, rel=0.05)
    assert law.exponents["D"] == pytest.approx(-0.2, rel=0.05)
    assert not law.poor and law.r2 > 0.99
    assert law(N=1e7, D=1e9) == pytest.approx(0.3118 * 1e7**-0.5 * 1e9**-0.2, rel=0.1)


def test_deepseeks_law_in_compute_is_recovered_with_an_interval_around_it():
    C = 6 * N * D
    law = bootstrap_power_law(noisy(0.3118 * C**-0.125, sd=0.01), samples=300, C=C)
    assert law.exponents["C"] == pytest.approx(-0.125, rel=0.05)
    low, high = law.intervals["C"]
    assert low < -0.125 < high and high - low < 0.05


def test_points_that_are_not_a_power_law_are_called_a_poor_fit():
    x = np.geomspace(1e5, 1e7, 12)
    y = np.exp(np.sin(3 * np.log(x)))  # goes up and down: no exponent describes it
    law = fit_power_law(y, N=x)
    assert law.poor and law.r2 < 0.5


def test_too_few_points_to_fit_are_refused():
    with pytest.raises(ValueError, match="3 points cannot fit 3 coefficients"):
        fit_power_law([1.0, 2.0, 3.0], N=[1, 2, 3], D=[1, 3, 2])


def test_chinchillas_loss_law_is_recovered_and_its_compute_optimum_minimises_it():
    irreducible, A, B, alpha, beta = 1.69, 406.4, 410.7, 0.34, 0.28
    n, d = np.meshgrid(np.geomspace(1e6, 1e9, 5), np.geomspace(1e8, 1e11, 5))
    n, d = n.ravel(), d.ravel()
    law = fit_loss_law(irreducible + A / n**alpha + B / d**beta, n, d)
    assert (law.alpha, law.beta, law.E) == pytest.approx((alpha, beta, irreducible), rel=0.05)
    assert not law.poor
    C = 1e21
    best_n, best_d = law.compute_optimal(C)
    assert 6 * best_n * best_d == pytest.approx(C)
    others = [law(best_n * f, C / (6 * best_n * f)) for f in (0.5, 0.8, 1.25, 2.0)]
    assert law(best_n, best_d) < min(others)


@pytest.mark.parametrize("vertex", [-7.3, -6.0, -8.8])
def test_the_grid_optimum_is_the_parabolas_vertex_between_grid_points(vertex):
    lrs = [2.0**k for k in range(-11, -3)]
    losses = [(math.log2(lr) - vertex) ** 2 + 3.0 for lr in lrs]
    best, loss, at_edge = grid_optimum(lrs, losses)
    assert math.log2(best) == pytest.approx(vertex, abs=1e-6) and not at_edge
    assert loss == pytest.approx(3.0)


def test_an_optimum_at_the_grids_edge_is_flagged():
    assert grid_optimum([1e-3, 2e-3, 4e-3], [3.0, 2.0, 1.0]) == (4e-3, 1.0, True)


def test_the_optimum_of_seeded_runs_is_read_from_their_mean_curve():
    from hyperlab.search.scaling_report import optima

    # two seeds a grid point: the single best run (2^-6, seed 1) is not the best mean (2^-7)
    curve = {-8: (3.0, 3.0), -7: (2.5, 2.5), -6: (3.4, 2.4), -5: (3.5, 3.5)}
    points = [
        {"N": 1e5, "D": 1e6, "lr": 2.0**k, "loss": loss, "width": 32, "steps": 500, "job": f"{k}_{seed}"}
        for k, losses in curve.items()
        for seed, loss in enumerate(losses)
    ]
    (row,) = optima(points)
    assert row["lr_grid"] == 2.0**-7 and row["loss_grid"] == 2.5 and row["runs"] == 8
    # the parabola through the means at -8, -7, -6 (3.0, 2.5, 2.9): curvature 0.45, slope -0.05 at -7
    assert math.log2(row["lr"]) == pytest.approx(-7 + 0.05 / 0.9, abs=1e-9)


# --- the report (python -m hyperlab.scale) on a sweep dir whose points follow known laws -------------------------

WIDTHS, STEPS, LOG2_LRS = (32, 64, 128), (125, 250, 500), range(-9, -2)


def true_lr(n, d):
    return 2.0 * n**-0.3 * d**-0.1


def true_loss(n, d):
    return 1.0 + 50.0 / n**0.3 + 200.0 / d**0.3


def write_sweep(folder):
    """A finished scaling grid: one job per (width, lr), each with a branch per budget; val/bpb is the loss law
    plus 0.05 (log2 lr - log2 eta*)^2, so every budget's best LR is eta*(N, D) exactly."""
    import json

    import yaml

    for job, (width, k) in enumerate((w, k) for w in WIDTHS for k in LOG2_LRS):
        n, lr = 24 * width**2 + 400 * width, 2.0**k
        budgets = {}
        for steps in STEPS:
            d = steps * 2048
            loss = true_loss(n, d) + 0.05 * (k - math.log2(true_lr(n, d))) ** 2
            budgets[str(steps)] = {"val/bpb": loss, "trainer/global_step": steps, "model/params": n}
            budgets[str(steps)]["data/tokens_trained"] = d
        hydra = folder / str(job) / ".hydra"
        hydra.mkdir(parents=True)
        overrides = ["hparams_search=scaling", f"model.width={width}", f"lr={lr!r}"]
        (hydra / "overrides.yaml").write_text(yaml.safe_dump(overrides))
        config = {"lr": lr, "batch_size": 32, "model": {"width": width}, "data": {"batches_per_epoch": 25}}
        (hydra / "config.yaml").write_text(yaml.safe_dump(config))
        (folder / str(job) / "metrics.json").write_text(json.dumps({**budgets["500"], "budgets": budgets}))
    (folder / "multirun.yaml").write_text(yaml.safe_dump({"optimized_metric": "val/bpb"}))


def test_the_report_recovers_the_laws_and_writes_a_target_run_that_composes(tmp_path, monkeypatch):
    from hyperlab.config.cli import compose
    from hyperlab.search import scaling_report

    write_sweep(tmp_path / "grid")
    conf = tmp_path / "conf"
    monkeypatch.setattr(scaling_report, "EXPERIMENTS", conf / "experiment")
    report = scaling_report.main([str(tmp_path / "grid"), "--width", "256", "--tokens", "2.05e6", "--name", "t"])
    laws, target = report["laws"], report["target"]
    assert laws["lr_ND"].exponents == pytest.approx({"N": -0.3, "D": -0.1}, abs=0.01)
    assert not laws["lr_ND"].poor
    assert (laws["loss"].alpha, laws["loss"].beta) == pytest.approx((0.3, 0.3), rel=0.05)
    assert (tmp_path / "grid" / "scaling.png").stat().st_size > 10_000
    n = 24 * 256**2 + 400 * 256
    assert target["N"] == pytest.approx(n) and target["steps"] == 1001 + 24  # whole epochs of 25 steps
    assert target["lr"] == pytest.approx(true_lr(n, target["D"]), rel=0.03)
    written = (tmp_path / "grid" / "target" / "experiment.yaml").read_text()
    assert written == (conf / "experiment" / "t.yaml").read_text()
    conf.joinpath("experiment").joinpath("t.yaml").write_text(written)
    cfg = compose(["experiment=t", f"hydra.searchpath=[file://{conf}]"], tmp_path / "run")
    assert (cfg.model.width, cfg.trainer.max_steps, cfg.scheduler.budgets) == (256, 1025, None)
    assert cfg.lr == pytest.approx(target["lr"], rel=1e-3) and cfg.callbacks.model_checkpoint is not None


def test_the_report_refuses_too_few_points_to_fit(tmp_path):
    from hyperlab.search import scaling_report

    write_sweep(tmp_path / "grid")
    for job in range(7, 21):  # keep the narrowest width only: one model size
        import shutil

        shutil.rmtree(tmp_path / "grid" / str(job))
    with pytest.raises(SystemExit, match="too few points to fit: .* has 3 \\(1 sizes, 3 budgets\\)"):
        scaling_report.main([str(tmp_path / "grid")])
