"""Row-mode decisions: one localized score per scored window, and the rows an event spans.

With ``detection.score.mode = "row"`` the pipeline still decides once per
scored window, but on the rows that window finalized
(:class:`~edge_agent.core.row_scores.RowAggregator`) instead of on the window
mean: their max (or mean) is smoothed and thresholded as before, and an
anomalous decision names the first and last of those rows above the threshold
in force, so an event starts at the row where the error is, not at the end of
the first window that saw it. The per-feature contributions stay the window's
(``feature_errors``): they explain which signal, the rows explain when.
"""

from __future__ import annotations

import numpy as np

from edge_agent.bundle import Bundle
from edge_agent.core.row_scores import RowAggregator
from edge_agent.detection.settings import ScoreSettings
from edge_agent.errors import VigilInputError


class RowScorer:
    """The localized score of each window's finalized rows; see the module docstring."""

    def __init__(self, bundle: Bundle, settings: ScoreSettings) -> None:
        spec = bundle.spec
        delay = settings.delay_rows
        if delay is not None and delay >= spec.window:
            raise VigilInputError(f"must be below the window ({spec.window}), got {delay}", file=bundle.path,
                                  key="detection.score.delay_rows")
        if spec.hop > spec.window:
            raise VigilInputError(f"row scores need hop <= window (hop {spec.hop}, window {spec.window})",
                                  file=bundle.path, key="detection.score.mode")
        weights = np.full(bundle.n_features, 1.0 / bundle.n_features) if bundle.weights is None else \
            np.asarray(bundle.weights, dtype=np.float64) / float(np.sum(bundle.weights))
        self.aggregator = RowAggregator(spec.window, spec.hop, weights, delay)
        self.use_max = settings.reduce == "max"

    def reset(self) -> None:
        self.aggregator.reset()

    def extend(self, rows: np.ndarray, times: np.ndarray) -> None:
        self.aggregator.extend(rows, times)

    def decide(self, step_errors: np.ndarray | None, feature_errors: np.ndarray, after: int) -> float | None:
        """The localized score of the rows the window (ending ``after`` samples back) finalized; None if none."""
        agg = self.aggregator
        if step_errors is None:  # a scorer that cannot localise: every row of the window gets its mean
            step_errors = np.broadcast_to(feature_errors, (agg.window, feature_errors.shape[0]))
        n = agg.add_window(step_errors, after)
        if n == 0:
            return None
        if n == 1:
            return float(agg.scores[agg.first])
        rows = agg.scores[agg.first:agg.last]
        return float(rows.max() if self.use_max else rows.mean())

    def event_span(self, threshold: float) -> tuple[int, float, int, float]:
        """Row and time of the first and last finalized row above ``threshold`` (the peak row when none is)."""
        agg = self.aggregator
        scores = agg.scores[agg.first:agg.last]
        above = np.flatnonzero(scores > threshold)
        i, j = (int(above[0]), int(above[-1])) if len(above) else (int(np.argmax(scores)),) * 2
        i, j = agg.first + i, agg.first + j
        return int(agg.rows[i]), float(agg.times[i]), int(agg.rows[j]), float(agg.times[j])

    def decision_row(self) -> tuple[int, float]:
        """Row and time of the first row the last decision covered (where its value is logged)."""
        agg = self.aggregator
        return int(agg.rows[agg.first]), float(agg.times[agg.first])
