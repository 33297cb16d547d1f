"""Peaks-over-threshold: a threshold for a target false-alarm risk (numpy only).

Siffer et al., "Anomaly Detection in Streams with Extreme Value Theory", KDD
2017 (SPOT/POT). Above a high initial threshold ``t`` (the ``init_quantile`` of
the normal scores), the excesses ``Y = X - t`` of almost any score distribution
follow a generalized Pareto distribution (Pickands-Balkema-de Haan)

    P(X - t > y | X > t) = (1 + gamma * y / sigma) ** (-1 / gamma)

so the score exceeded with probability ``q`` (the risk) is

    z_q = t + sigma / gamma * ((q * n / N_t) ** -gamma - 1)     (gamma != 0)
    z_q = t - sigma * log(q * n / N_t)                         (gamma == 0)

with ``n`` scores of which ``N_t`` exceed ``t``. ``gamma`` and ``sigma`` are
the maximum-likelihood estimates found by Grimshaw's trick: the likelihood's
stationary points are the roots of ``u(x) * v(x) = 1`` in the single variable
``x = gamma / sigma``, with

    u(x) = mean(1 / (1 + x * Y)),   v(x) = 1 + mean(log(1 + x * Y))

and ``gamma = v(x) - 1``, ``sigma = gamma / x``. The roots lie in
``(-1 / max(Y), 0)`` and ``(0, 2 (mean(Y) - min(Y)) / min(Y)^2]``; they are
bracketed by sign changes on a grid (log-spaced, dense near the ends) and
refined by bisection. The exponential tail
(gamma = 0, sigma = mean(Y)) is always a candidate; the candidate with the
highest log-likelihood wins. With too few peaks for a fit the empirical
quantile is returned and ``fit_info["method"]`` says so.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

MIN_PEAKS = 10  # fewer excesses than this cannot support a 2-parameter tail fit
LOWEST_INIT_QUANTILE = 0.8  # with few scores the initial threshold is lowered, never below this
_GRID = 400
_BISECT_STEPS = 60


def pot_threshold(scores: np.ndarray, q_risk: float, init_quantile: float = 0.98) -> tuple[float, dict[str, Any]]:
    """Score exceeded with probability ``q_risk`` by a normal score; and how it was found.

    ``scores``: normal (held-out) scores, higher = more anomalous; NaNs ignored.
    ``init_quantile`` is lowered (not below 0.8) when fewer than ``MIN_PEAKS``
    scores would exceed it.
    """
    x = np.asarray(scores, dtype=np.float64).ravel()
    x = x[np.isfinite(x)]
    if x.size == 0:
        raise ValueError("no finite scores to fit a tail to")
    if not (0.0 < q_risk < 1.0):
        raise ValueError(f"q_risk must be in (0, 1), got {q_risk}")
    n = x.size
    level = min(float(init_quantile), 1.0 - MIN_PEAKS / n) if n > 0 else init_quantile
    level = max(level, LOWEST_INIT_QUANTILE)
    t = float(np.quantile(x, level))
    excesses = x[x > t] - t
    info: dict[str, Any] = {"q_risk": float(q_risk), "n_scores": int(n), "init_quantile": round(level, 6),
                            "init_threshold": t, "n_peaks": int(excesses.size)}
    if excesses.size < MIN_PEAKS or float(np.ptp(excesses)) <= 0.0:
        value = float(x.max())
        return value, {**info, "method": f"empirical max (fewer than {MIN_PEAKS} distinct peaks for a tail fit)"}
    if q_risk >= excesses.size / n:  # the target lies below the initial threshold: no tail needed
        value = float(np.quantile(x, 1.0 - q_risk))
        return value, {**info, "method": "empirical quantile (risk above the tail fraction)"}
    gamma, sigma, loglik = fit_gpd(excesses)
    ratio = q_risk * n / excesses.size
    if abs(gamma) < 1e-8:
        value = t - sigma * math.log(ratio)
    else:
        value = t + sigma / gamma * (ratio ** (-gamma) - 1.0)
    return float(value), {**info, "method": "POT, GPD by Grimshaw maximum likelihood", "gamma": gamma,
                          "sigma": sigma, "log_likelihood": loglik}


def fit_gpd(excesses: np.ndarray) -> tuple[float, float, float]:
    """(gamma, sigma, log-likelihood) of the GPD fitted to positive ``excesses``."""
    y = np.asarray(excesses, dtype=np.float64)
    candidates = [(0.0, float(y.mean()))]
    for root in _grimshaw_roots(y):
        gamma = float(np.mean(np.log1p(root * y)))
        if gamma != 0.0:
            candidates.append((gamma, gamma / root))
    scored = [(gpd_log_likelihood(y, g, s), g, s) for g, s in candidates if s > 0]
    loglik, gamma, sigma = max(scored)
    return gamma, sigma, loglik


def gpd_log_likelihood(y: np.ndarray, gamma: float, sigma: float) -> float:
    """Log-likelihood of excesses ``y`` under GPD(gamma, sigma); -inf outside its support."""
    if sigma <= 0:
        return -math.inf
    if abs(gamma) < 1e-12:
        return float(-y.size * math.log(sigma) - y.sum() / sigma)
    z = 1.0 + gamma * y / sigma
    if np.any(z <= 0):
        return -math.inf
    return float(-y.size * math.log(sigma) - (1.0 + 1.0 / gamma) * np.log(z).sum())


def _grimshaw_roots(y: np.ndarray) -> list[float]:
    y_min, y_max, y_mean = float(y.min()), float(y.max()), float(y.mean())
    # Negative side: x = -(1 - s) / y_max, s in (0, 1), dense near both ends (the
    # root of a bounded tail sits right next to -1 / y_max).
    s = np.unique(np.concatenate([np.geomspace(1e-10, 0.5, _GRID), 1.0 - np.geomspace(1e-6, 0.5, _GRID)]))
    roots = _roots_on(y, -(1.0 - s) / y_max)
    # Positive side: (0, 2 (mean - min) / min^2], log-spaced from next to 0.
    high = 2.0 * (y_mean - y_min) / (y_min * y_min) if y_min > 0 else 1e12 / y_max
    low = 1e-6 / y_max
    if high > low:
        roots += _roots_on(y, np.geomspace(low, min(high, 1e12 / y_max), 2 * _GRID))
    return roots


def _grimshaw_w(y: np.ndarray, x: float) -> float:
    s = 1.0 + x * y
    return float(np.mean(1.0 / s) * (1.0 + np.mean(np.log(s))) - 1.0)


def _roots_on(y: np.ndarray, grid: np.ndarray) -> list[float]:
    """Roots of Grimshaw's w on a sorted grid: sign changes, refined by bisection."""
    values = np.array([_grimshaw_w(y, float(g)) for g in grid])
    roots = []
    for i in np.flatnonzero(np.sign(values[:-1]) * np.sign(values[1:]) < 0):
        a, b, fa = float(grid[i]), float(grid[i + 1]), float(values[i])
        for _ in range(_BISECT_STEPS):
            mid = 0.5 * (a + b)
            fm = _grimshaw_w(y, mid)
            if np.sign(fm) == np.sign(fa):
                a, fa = mid, fm
            else:
                b = mid
        roots.append(0.5 * (a + b))
    return roots
