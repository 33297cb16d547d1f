"""EWMA smoothing of consecutive window scores.

Single noisy windows cause most false alarms; an exponentially weighted moving
average over consecutive windows trades a little latency for far fewer of them.
``alpha = 1`` (or ``None``) means no smoothing.
"""

from __future__ import annotations

import math

import numpy as np


def ewma(scores: np.ndarray, alpha: float | None) -> np.ndarray:
    """Batch EWMA, identical to feeding :class:`Ewma` one score at a time."""
    scores = np.asarray(scores, dtype=np.float64)
    if alpha is None or alpha >= 1.0:
        return scores.copy()
    smoother = Ewma(alpha)
    return np.array([smoother.update(s) for s in scores], dtype=np.float64)


class Ewma:
    """Streaming EWMA: ``s_t = alpha * x_t + (1 - alpha) * s_{t-1}``, ``s_0 = x_0``."""

    def __init__(self, alpha: float | None) -> None:
        if alpha is not None and not (0.0 < alpha <= 1.0):
            raise ValueError(f"smoothing alpha must be in (0, 1], got {alpha}")
        self.alpha = 1.0 if alpha is None else float(alpha)
        self._state: float | None = None

    def reset(self) -> None:
        self._state = None

    def update(self, score: float) -> float:
        if self._state is None or not math.isfinite(self._state):
            self._state = float(score)
        else:
            self._state = self.alpha * float(score) + (1.0 - self.alpha) * self._state
        return self._state
