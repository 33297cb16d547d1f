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

from typing import Any

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

    def decide_many(self, results: list[Any], afters: list[int]) -> list[tuple[float, int, int] | None]:
        """For each scored window of one block (ending ``afters[j]`` samples before the newest one):
        ``(localized score, first, last)`` of the rows it finalized (buffer indices), or None."""
        agg = self.aggregator
        steps = [r.step_errors if r.step_errors is not None else  # a scorer that cannot localise:
                 np.broadcast_to(r.feature_errors, (agg.window, r.feature_errors.shape[0]))  # rows get the mean
                 for r in results]
        spans = agg.add_windows(steps, afters)
        if spans is None:
            out: list[tuple[float, int, int] | None] = []
            for step, after in zip(steps, afters, strict=True):
                n = agg.add_window(step, after)
                out.append(None if n == 0 else (self._reduce(agg.first, agg.last), agg.first, agg.last))
            return out
        first, last = spans
        a, b = first[0], last[-1]
        offsets = [f - a for f in first]
        if self.use_max:
            values = np.maximum.reduceat(agg.scores[a:b], offsets)
        else:
            values = np.add.reduceat(agg.scores[a:b], offsets) / (np.asarray(last) - np.asarray(first))
        return list(zip(values.tolist(), first, last, strict=True))

    def _reduce(self, first: int, last: int) -> float:
        scores = self.aggregator.scores
        if last - first == 1:
            return float(scores[first])
        rows = scores[first:last]
        return float(rows.max() if self.use_max else rows.mean())

    def event_span(self, threshold: float, first: int, last: int) -> tuple[int, float, int, float]:
        """Row and time of the first and last row in ``[first, last)`` above ``threshold`` (else the peak row)."""
        agg = self.aggregator
        values = agg.scores
        if values[first] > threshold and values[last - 1] > threshold:  # inside an anomaly: both ends above
            i, j = first, last - 1
        else:
            scores = values[first:last].tolist()  # a hop of rows: plain Python beats numpy calls here
            above = [n for n, v in enumerate(scores) if v > threshold]
            i, j = (above[0], above[-1]) if above else (scores.index(max(scores)),) * 2
            i, j = first + i, first + j
        return int(agg.rows[i]), float(agg.times[i]), int(agg.rows[j]), float(agg.times[j])

    def row_at(self, index: int) -> tuple[int, float]:
        """Stream row and time of a buffer index (where a decision's value is logged)."""
        return int(self.aggregator.rows[index]), float(self.aggregator.times[index])
