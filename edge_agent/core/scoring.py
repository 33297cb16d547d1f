"""Window score = reconstruction error of the autoencoder.

Per feature: the mean over the window's time steps of the squared (``mse``) or
absolute (``mae``) error between the scaled input and its reconstruction. The
window score is the weighted mean of those per-feature errors; the per-feature
errors are kept because they explain *which* signal made a window anomalous.
The per-time-step errors behind them (``step_errors``) let the pipeline place
an anomaly on the rows that caused it rather than on the window's last row.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np


class ScoreFunction(str, Enum):
    MSE = "mse"
    MAE = "mae"


@dataclass(frozen=True)
class WindowScore:
    """Score of one window plus the per-feature error behind it.

    ``step_errors`` (``[window, features]``, optional) is the error of each of
    the window's rows before the mean over time; ``feature_errors`` is its mean
    over axis 0. Scorers that cannot localise leave it ``None``.
    """

    score: float
    feature_errors: np.ndarray
    step_errors: np.ndarray | None = None

    def contributions(self, weights: np.ndarray | None = None) -> np.ndarray:
        """Share of the score each feature is responsible for (sums to 1)."""
        e = self.feature_errors if weights is None else self.feature_errors * weights
        total = float(e.sum())
        if total <= 0:
            return np.full(len(e), 1.0 / len(e))
        return e / total


def normalised_weights(weights: np.ndarray | list[float] | None, n_features: int) -> np.ndarray:
    if weights is None:
        return np.full(n_features, 1.0 / n_features)
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (n_features,) or np.any(w < 0) or not np.isfinite(w).all() or w.sum() <= 0:
        raise ValueError(f"feature weights must be {n_features} non-negative numbers, not all zero")
    return np.asarray(w / w.sum(), dtype=np.float64)


def step_errors(
    windows: np.ndarray, reconstructions: np.ndarray, fn: ScoreFunction | str = "mse"
) -> np.ndarray:
    """Per-time-step, per-feature error of each window: ``[n, window, f]`` (float64)."""
    fn = ScoreFunction(fn)
    diff = np.asarray(windows, np.float64) - np.asarray(reconstructions, np.float64)
    if diff.ndim == 2:
        diff = diff[None]
    return diff * diff if fn is ScoreFunction.MSE else np.abs(diff)


def window_errors(
    windows: np.ndarray, reconstructions: np.ndarray, fn: ScoreFunction | str = "mse"
) -> np.ndarray:
    """Per-feature error of each window: ``[n, window, f]`` -> ``[n, f]``."""
    return np.asarray(step_errors(windows, reconstructions, fn).mean(axis=1), dtype=np.float64)


def score_windows(
    windows: np.ndarray,
    reconstructions: np.ndarray,
    fn: ScoreFunction | str = "mse",
    weights: np.ndarray | list[float] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Scores ``[n]`` and per-feature errors ``[n, f]`` for a batch of windows."""
    errors = window_errors(windows, reconstructions, fn)
    w = normalised_weights(weights, errors.shape[1])
    return errors @ w, errors


def score_windows_with_steps(
    windows: np.ndarray,
    reconstructions: np.ndarray,
    fn: ScoreFunction | str = "mse",
    weights: np.ndarray | list[float] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`score_windows` plus the step errors ``[n, window, f]`` it averaged (same numbers)."""
    steps = step_errors(windows, reconstructions, fn)
    errors = np.asarray(steps.mean(axis=1), dtype=np.float64)
    w = normalised_weights(weights, errors.shape[1])
    return errors @ w, errors, steps
