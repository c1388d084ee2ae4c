"""Scaling laws fitted to a grid of small runs: functions of arrays, in the papers' symbols.

- The best learning rate as a power law of model size N and tokens D: eta* = a N^alpha_N D^alpha_D, or of compute
  C = 6 N D: eta* = a C^gamma (DeepSeek LLM 2024: eta_opt = 0.3118 C^-0.125; Bjorck et al. 2025: the best LR falls
  as the token horizon grows). Fitted by least squares in log space; bootstrap intervals resample the points.
- The loss L(N, D) = E + A / N^alpha + B / D^beta (Hoffmann et al. 2022, "Chinchilla"), fitted with a Huber loss
  on log L from a grid of starts, as they did; its compute-optimal N for a budget C follows in closed form.
- The best value of a grid (an LR grid a factor 2 apart): the vertex of a parabola through the best point and its
  neighbours in log2, so a law is fitted to optima between grid points, not to the grid's steps.

A fit says how good it is: R^2 of log y in log space; below GOOD_R2 it is called poor (the points are not a
power law, or too noisy to say).
"""

import math
from dataclasses import dataclass

import numpy as np

GOOD_R2 = 0.9  # below this a fitted law does not describe its points


@dataclass
class PowerLaw:
    """y = a * prod(x_i ** exponents[i]); `r2` of log y; `intervals`: per name (and "a"), a bootstrap interval."""

    a: float
    exponents: dict[str, float]
    r2: float
    intervals: dict[str, tuple[float, float]] | None = None

    def __call__(self, **x: float) -> float:
        return self.a * math.prod(x[name] ** e for name, e in self.exponents.items())

    @property
    def poor(self) -> bool:
        return self.r2 < GOOD_R2


def _r2(observed: np.ndarray, fitted: np.ndarray) -> float:
    residual = float(np.sum((observed - fitted) ** 2))
    total = float(np.sum((observed - observed.mean()) ** 2))
    if total <= 1e-12 * len(observed):  # every point equal: the fit is exact or it is not
        return 1.0 if residual <= 1e-12 * len(observed) else 0.0
    return 1.0 - residual / total


def fit_power_law(y, **x) -> PowerLaw:
    """Least squares of log y = log a + sum_i e_i log x_i over the points (arrays of equal length)."""
    log_y = np.log(np.asarray(y, dtype=float))
    names = list(x)
    design = np.column_stack([np.ones_like(log_y)] + [np.log(np.asarray(x[n], dtype=float)) for n in names])
    if len(log_y) <= design.shape[1]:
        raise ValueError(f"{len(log_y)} points cannot fit {design.shape[1]} coefficients (log a and {names})")
    coefficients, *_ = np.linalg.lstsq(design, log_y, rcond=None)
    r2 = _r2(log_y, design @ coefficients)
    return PowerLaw(float(np.exp(coefficients[0])), dict(zip(names, map(float, coefficients[1:]), strict=True)), r2)


def bootstrap_power_law(y, samples: int = 1000, seed: int = 0, level: float = 0.95, **x) -> PowerLaw:
    """`fit_power_law` with percentile intervals from `samples` refits on points drawn with replacement."""
    law = fit_power_law(y, **x)
    y, x = np.asarray(y, dtype=float), {n: np.asarray(v, dtype=float) for n, v in x.items()}
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {name: [] for name in ["a", *x]}
    for _ in range(samples):
        rows = rng.integers(0, len(y), len(y))
        if any(len(np.unique(v[rows])) < 2 for v in x.values()):
            continue  # a draw with one value of a variable cannot fit its exponent
        refit = fit_power_law(y[rows], **{n: v[rows] for n, v in x.items()})
        draws["a"].append(refit.a)
        for name, exponent in refit.exponents.items():
            draws[name].append(exponent)
    tail = (1 - level) / 2 * 100
    law.intervals = {n: tuple(np.percentile(d, [tail, 100 - tail]).tolist()) for n, d in draws.items() if d}
    return law


@dataclass
class LossLaw:
    """L(N, D) = E + A / N^alpha + B / D^beta; `r2` of log L."""

    E: float
    A: float
    B: float
    alpha: float
    beta: float
    r2: float

    def __call__(self, N, D):
        return self.E + self.A / np.power(N, self.alpha) + self.B / np.power(D, self.beta)

    @property
    def poor(self) -> bool:
        return self.r2 < GOOD_R2

    def compute_optimal(self, C: float) -> tuple[float, float]:
        """(N, D) minimising L under C = 6 N D (Hoffmann et al., eq. 4):
        N = G (C/6)^(beta/(alpha+beta)), G = (alpha A / (beta B))^(1/(alpha+beta))."""
        G = (self.alpha * self.A / (self.beta * self.B)) ** (1 / (self.alpha + self.beta))
        N = G * (C / 6) ** (self.beta / (self.alpha + self.beta))
        return N, C / (6 * N)


def fit_loss_law(L, N, D) -> LossLaw:
    """Chinchilla's fit: minimise the Huber loss (delta 1e-3) of log L against log of the law's sum, written with
    log-space parameters (e, log A, log B) so every term stays positive, from a grid of starting points."""
    from scipy.optimize import least_squares
    from scipy.special import logsumexp

    L, N, D = (np.asarray(v, dtype=float) for v in (L, N, D))
    if len(L) < 5:
        raise ValueError(f"{len(L)} points cannot fit L(N, D)'s 5 parameters (E, A, B, alpha, beta)")
    log_L, log_N, log_D = np.log(L), np.log(N), np.log(D)

    def residuals(p):
        e, a, b, alpha, beta = p
        return logsumexp([np.full_like(log_N, e), a - alpha * log_N, b - beta * log_D], axis=0) - log_L

    best = None
    for e0 in (np.log(L.min()) - 1.0, np.log(L.min()) - 0.2):
        for alpha0 in (0.2, 0.5, 1.0):
            for beta0 in (0.2, 0.5, 1.0):
                start = [
                    e0,
                    np.log(L.max()) + alpha0 * log_N.mean(),
                    np.log(L.max()) + beta0 * log_D.mean(),
                    alpha0,
                    beta0,
                ]
                fit = least_squares(
                    residuals, start, loss="huber", f_scale=1e-3, bounds=([-np.inf] * 3 + [0, 0], np.inf)
                )
                if best is None or fit.cost < best.cost:
                    best = fit
    e, a, b, alpha, beta = best.x
    law = LossLaw(float(np.exp(e)), float(np.exp(a)), float(np.exp(b)), float(alpha), float(beta), 0.0)
    law.r2 = _r2(log_L, np.log(law(N, D)))
    return law


def grid_optimum(values, losses) -> tuple[float, float, bool]:
    """The best value of a 1-D grid (e.g. learning rates a factor 2 apart) and the loss there: the vertex of the
    parabola through the best point and its two neighbours in log2(value), kept within them; and whether the
    best point is at the grid's edge (then the optimum may lie outside it, and the best point itself is returned)."""
    order = np.argsort(values)
    values, losses = np.asarray(values, dtype=float)[order], np.asarray(losses, dtype=float)[order]
    i = int(np.argmin(losses))
    if i == 0 or i == len(values) - 1:
        return float(values[i]), float(losses[i]), True
    x = np.log2(values[i - 1 : i + 2])
    parabola = np.polyfit(x, losses[i - 1 : i + 2], 2)
    if parabola[0] <= 0:
        return float(values[i]), float(losses[i]), False
    vertex = float(np.clip(-parabola[1] / (2 * parabola[0]), x[0], x[2]))
    return float(2.0**vertex), float(np.polyval(parabola, vertex)), False
