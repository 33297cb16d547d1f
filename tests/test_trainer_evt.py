"""Peaks-over-threshold (edge_agent.detection.evt): known distributions -> known quantiles."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edge_agent.detection.evt import (
    MIN_PEAKS,
    fit_gpd,
    gpd_log_likelihood,
    pot_threshold,
)


def test_exponential_quantile_within_tolerance() -> None:
    scores = np.random.default_rng(0).exponential(1.0, 20000)
    value, info = pot_threshold(scores, 1e-4)
    # P(X > z) = exp(-z)  ->  z = -ln(1e-4) = 9.21; the GPD fit of an exponential tail has gamma ~ 0
    assert value == pytest.approx(-math.log(1e-4), rel=0.08)
    assert abs(info["gamma"]) < 0.1 and info["method"].startswith("POT")
    assert info["n_peaks"] == pytest.approx(0.02 * 20000, abs=2)


def test_pareto_quantile_and_shape_within_tolerance() -> None:
    # numpy's pareto(a) is Lomax: P(X > x) = (1 + x) ** -a, a GPD with gamma = 1/a
    a = 3.0
    scores = np.random.default_rng(1).pareto(a, 50000)
    value, info = pot_threshold(scores, 1e-4)
    assert value == pytest.approx((1e-4) ** (-1 / a) - 1.0, rel=0.15)
    assert info["gamma"] == pytest.approx(1 / a, abs=0.12)


def test_bounded_tail_has_negative_shape() -> None:
    # X = 1 - sqrt(U): P(X > x) = (1 - x)^2, a bounded tail with gamma = -1/2
    scores = 1.0 - np.sqrt(np.random.default_rng(2).uniform(0.0, 1.0, 20000))
    value, info = pot_threshold(scores, 1e-4)
    assert info["gamma"] == pytest.approx(-0.5, abs=0.15)
    assert value == pytest.approx(1.0 - np.sqrt(1e-4), abs=0.01)


def test_fit_gpd_beats_the_exponential_on_a_heavy_tail() -> None:
    y = np.random.default_rng(3).pareto(2.0, 5000)
    gamma, sigma, loglik = fit_gpd(y)
    assert loglik > gpd_log_likelihood(y, 0.0, float(y.mean()))
    assert gamma == pytest.approx(0.5, abs=0.1) and sigma == pytest.approx(0.5, rel=0.15)


def test_risk_above_the_tail_fraction_is_the_empirical_quantile() -> None:
    scores = np.arange(1000, dtype=np.float64)
    value, info = pot_threshold(scores, 0.1)
    assert value == pytest.approx(np.quantile(scores, 0.9))
    assert info["method"].startswith("empirical quantile")


def test_few_scores_lower_the_initial_quantile_and_flat_tails_fall_back() -> None:
    scores = np.random.default_rng(4).exponential(1.0, 200)
    _, info = pot_threshold(scores, 1e-3)
    assert info["n_peaks"] >= MIN_PEAKS and info["init_quantile"] < 0.98
    flat = np.zeros(200)
    value, info = pot_threshold(flat, 1e-3)
    assert value == 0.0 and info["method"].startswith("empirical max")


def test_bad_input_raises() -> None:
    with pytest.raises(ValueError):
        pot_threshold(np.array([np.nan]), 1e-3)
    with pytest.raises(ValueError):
        pot_threshold(np.ones(100), 0.0)
