"""Row-mode decisions: one localized score per scored window, and the rows an event spans.

With ``detection.score.mode = "row"`` the pipeline still decides once per
scored window, but on the rows that window finalized
(:class:`~edge_agent.core.row_scores.RowAggregator`) instead of on the window
mean: their max (or mean) is smoothed and thresholded as before, and an
anomalous decision names the first and last of those rows above the threshold
in force, so an event starts at the row where the error is, not at the end of
the first window that saw it.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from edge_agent.bundle import Bundle
from edge_agent.core.row_scores import FinalRows, RowAggregator
from edge_agent.detection.settings import ScoreSettings
from edge_agent.errors import VigilInputError


class RowDecision(NamedTuple):
    """The localized score of one window's finalized rows, and where they are."""

    score: float
    feature_errors: np.ndarray
    final: FinalRows


class RowScorer:
    """Turns each scored window's step errors into a :class:`RowDecision` (None: nothing finalized)."""

    def __init__(self, bundle: Bundle, settings: ScoreSettings) -> None:
        spec = bundle.spec
        delay = settings.delay_rows
        if delay is not None and delay >= spec.window:
            raise VigilInputError(f"must be below the window ({spec.window}), got {delay}", file=bundle.path,
                                  key="detection.score.delay_rows")
        weights = np.full(bundle.n_features, 1.0 / bundle.n_features) if bundle.weights is None else \
            np.asarray(bundle.weights, dtype=np.float64) / float(np.sum(bundle.weights))
        self.aggregator = RowAggregator(spec.window, spec.hop, weights, delay)
        self.use_max = settings.reduce == "max"

    def reset(self) -> None:
        self.aggregator.reset()

    def extend(self, rows: np.ndarray, times: np.ndarray) -> None:
        self.aggregator.extend(rows, times)

    def decide(self, step_errors: np.ndarray | None, feature_errors: np.ndarray) -> RowDecision | None:
        """Account for one window (ending at the newest sample handed over)."""
        if step_errors is None:  # a scorer that cannot localise: every row of the window gets its mean
            step_errors = np.broadcast_to(feature_errors, (self.aggregator.window, feature_errors.shape[0]))
        final = self.aggregator.add_window(step_errors)
        if len(final) == 0:
            return None
        if self.use_max:
            j = int(np.argmax(final.scores))
            return RowDecision(float(final.scores[j]), final.feature_errors[j], final)
        return RowDecision(float(final.scores.mean()), final.feature_errors.mean(axis=0), final)


def event_rows(final: FinalRows, threshold: float) -> tuple[int, int]:
    """Indices of the first and last finalized row above ``threshold`` (the peak row when none is)."""
    above = np.flatnonzero(final.scores > threshold)
    if len(above) == 0:
        j = int(np.argmax(final.scores))
        return j, j
    return int(above[0]), int(above[-1])
