"""Per-row localized error: the step errors of the overlapping windows that covered each row.

A window score is one mean over ``window`` rows, so a short anomaly inside a
long window is diluted, and it is reported at the window's last row. Every
window also has the error of each of its rows (``WindowScore.step_errors``);
with hop < window a row is covered by up to ``ceil(window / hop)`` windows.
:class:`RowAggregator` sums those errors per row as the windows arrive and
*finalizes* a row once ``delay`` further samples have been windowed: its
score is then the mean over the windows that covered it so far (all of them
when ``delay = window - 1``, the default), weighted over features like the
window score. Causal by construction (a row's score uses only windows that
ended at most ``delay`` samples after it) and bounded: a few ``window``-sized
buffers, whatever the stream length.

Positions are sample counts since the last :meth:`RowAggregator.reset`, not
stream rows: a sample skipped by the quality step is in no window. The caller
hands over each sample's stream row and timestamp (:meth:`extend`) before the
window that ends at it (:meth:`add_window`), so finalized rows come back with
their own row numbers and times.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FinalRows:
    """Rows finalized by one window: views into the aggregator, valid until its next call."""

    rows: np.ndarray  # int64 [k] stream rows
    times: np.ndarray  # float64 [k]
    scores: np.ndarray  # float64 [k] weighted mean error per row
    feature_errors: np.ndarray  # float64 [k, features] mean error per row and feature

    def __len__(self) -> int:
        return int(self.rows.shape[0])


class RowAggregator:
    """Streaming per-row mean of overlapping windows' step errors; see the module docstring."""

    def __init__(self, window: int, hop: int, weights: np.ndarray, delay: int | None = None) -> None:
        self.window, self.hop = int(window), int(hop)
        if self.hop > self.window:
            raise ValueError("per-row scores need hop <= window (every row in some window)")
        self.delay = self.window - 1 if delay is None else int(delay)
        if not 0 <= self.delay < self.window:
            raise ValueError(f"row delay must be in [0, {self.window - 1}], got {self.delay}")
        self.weights = np.asarray(weights, dtype=np.float64)
        n_features = int(self.weights.shape[0])
        # Pending samples never exceed delay + hop + window; a linear buffer of twice that is
        # compacted (one slice copy) when it runs out, instead of ring arithmetic on every call.
        self._capacity = 2 * (2 * self.window + self.hop)
        self._sums = np.zeros((self._capacity, n_features), dtype=np.float64)
        self._counts = np.zeros(self._capacity, dtype=np.float64)
        self._rows = np.zeros(self._capacity, dtype=np.int64)
        self._times = np.zeros(self._capacity, dtype=np.float64)
        self._scores = np.zeros(self._capacity, dtype=np.float64)
        self._means = np.zeros((self._capacity, n_features), dtype=np.float64)
        self.reset()

    def reset(self) -> None:
        """Forget pending rows (after a gap the window buffer restarts; so do the rows)."""
        self._start = 0  # buffer index of the first pending (not finalized) sample
        self._end = 0  # buffer index after the last sample handed over
        self._sums[:] = 0.0
        self._counts[:] = 0.0

    @property
    def pending(self) -> int:
        return self._end - self._start

    def extend(self, rows: np.ndarray, times: np.ndarray) -> None:
        """Stream rows and timestamps of the next samples, in order (before their windows)."""
        n = int(rows.shape[0])
        if n == 0:
            return
        if self._end + n > self._capacity:
            self._compact()
            if self._end + n > self._capacity:  # only the newest samples can still reach a window
                drop = self._end + n - self._capacity
                self._start = min(self._start + drop, self._end)
                self._compact()
        e = self._end
        self._rows[e:e + n] = rows
        self._times[e:e + n] = times
        self._end = e + n

    def add_window(self, step_errors: np.ndarray) -> FinalRows:
        """Account for the window ``[window, features]`` ending at the newest sample; return finalized rows."""
        w, e = self.window, self._end
        a = max(e - w, 0)
        steps = step_errors[w - (e - a):]  # the window's rows still in the buffer (all, normally)
        self._sums[a:e] += steps
        self._counts[a:e] += 1.0
        first, last = self._start, max(e - self.delay, self._start)
        if last > first:
            np.divide(self._sums[first:last], self._counts[first:last, None], out=self._means[first:last])
            np.dot(self._means[first:last], self.weights, out=self._scores[first:last])
        self._start = last
        return FinalRows(self._rows[first:last], self._times[first:last], self._scores[first:last],
                         self._means[first:last])

    def _compact(self) -> None:
        s, e = self._start, self._end
        n = e - s
        if s == 0:
            return
        for buf in (self._sums, self._counts, self._rows, self._times):
            buf[:n] = buf[s:e]
        self._sums[n:] = 0.0
        self._counts[n:] = 0.0
        self._start, self._end = 0, n
