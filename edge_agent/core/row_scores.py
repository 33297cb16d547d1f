"""Per-row localized error: the step errors of the overlapping windows that covered each row.

A window score is one mean over ``window`` rows, so a short anomaly inside a
long window is diluted, and it is reported at the window's last row. Every
window also has the error of each of its rows (``WindowScore.step_errors``);
with hop < window a row is covered by up to ``ceil(window / hop)`` windows.
:class:`RowAggregator` sums those errors per row as the windows arrive and
*finalizes* a row once the windowed samples have reached ``delay`` samples
past it: its score is then the mean over the windows that covered it so far
(all of them when ``delay = window - 1``, the default), weighted over
features like the window score. Causal by construction (a row's score uses
only windows that ended by then) and bounded: buffers of a few windows plus
the largest block handed over at once, whatever the stream length.

Positions are sample counts since the last :meth:`RowAggregator.reset`, not
stream rows: a sample skipped by the quality step is in no window. The caller
hands over the stream rows and timestamps of the samples (:meth:`extend`,
once per block) and then each window with how many of those samples came
after its end (:meth:`add_window`), so finalized rows keep their row numbers.

The per-window work is a handful of numpy calls on preallocated buffers (the
weighted step error, one add of ``[score, 1]`` per row, one divide for the
finalized rows): the device runs it for every window.
"""

from __future__ import annotations

import numpy as np


class RowAggregator:
    """Streaming per-row mean of overlapping windows' step errors; see the module docstring.

    After :meth:`add_window`, the rows it finalized are buffer indices
    ``[first, last)``: ``scores``, ``rows`` and ``times`` hold their values
    (valid until the next call).
    """

    def __init__(self, window: int, hop: int, weights: np.ndarray, delay: int | None = None) -> None:
        self.window, self.hop = int(window), int(hop)
        if self.hop > self.window:
            raise ValueError("per-row scores need hop <= window (every row in some window)")
        self.delay = self.window - 1 if delay is None else int(delay)
        if not 0 <= self.delay < self.window:
            raise ValueError(f"row delay must be in [0, {self.window - 1}], got {self.delay}")
        self.weights = np.asarray(weights, dtype=np.float64)
        self._weighted = np.ones((2, self.window), dtype=np.float64)  # [weighted step error, 1] per row
        self._steps_index = np.arange(self.window, dtype=np.int64)[None, :]
        self._product = np.zeros((self.window, self.weights.shape[0]), dtype=np.float64)
        self._span = np.arange(4 * self.window, dtype=np.int64)
        self._allocate(4 * (self.window + self.hop))
        self.reset()

    def _allocate(self, capacity: int) -> None:
        self._capacity = capacity
        self._acc = np.zeros((2, capacity), dtype=np.float64)  # per row: sum of errors, windows counted
        self.scores = np.zeros(capacity, dtype=np.float64)
        self.rows = np.zeros(capacity, dtype=np.int64)
        self.times = np.zeros(capacity, dtype=np.float64)

    def reset(self) -> None:
        """Forget pending rows (after a gap the window buffer restarts; so do the rows)."""
        self._start = 0  # buffer index of the first pending (not finalized) sample
        self._end = 0  # buffer index after the last sample handed over
        self._acc[:] = 0.0
        self.first = self.last = 0

    @property
    def pending(self) -> int:
        return self._end - self._start

    def extend(self, rows: np.ndarray, times: np.ndarray) -> None:
        """Stream rows and timestamps of the next samples, in order (before their windows are added)."""
        n = int(rows.shape[0])
        if n == 0:
            return
        if self._end + n > self._capacity:
            self._make_room(n)
        e = self._end
        self.rows[e:e + n] = rows
        self.times[e:e + n] = times
        self._end = e + n

    def add_window(self, step_errors: np.ndarray, after: int = 0) -> int:
        """Account for the window ``[window, features]`` ending ``after`` samples before the newest one.

        Returns how many rows it finalized (``first`` / ``last`` index them).
        """
        w = self.window
        e = self._end - after
        a = e - w
        # multiply + sum, not np.dot: BLAS may round a stacked block differently (add_windows must match)
        np.multiply(step_errors, self.weights, out=self._product)
        np.sum(self._product, axis=1, out=self._weighted[0])
        if a >= 0:
            self._acc[:, a:e] += self._weighted
        else:  # the window's oldest rows were already finalized and dropped
            self._acc[:, 0:e] += self._weighted[:, -a:]
        first, last = self._start, e - self.delay
        if last <= first:
            self.first = self.last = first
            return 0
        acc = self._acc
        np.divide(acc[0, first:last], acc[1, first:last], out=self.scores[first:last])
        self._start, self.first, self.last = last, first, last
        return last - first

    def add_windows(self, step_errors: list[np.ndarray], afters: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """:meth:`add_window` for every window of one block at once; ``(first, last)`` index arrays per window.

        Only with ``delay = window - 1`` (the rows a window finalizes are in
        no later window) and when every window finalizes a row: then one
        ``bincount`` adds the windows to the rows in the same order, so the
        sums are bit-identical to window-by-window; otherwise None (call
        :meth:`add_window` per window). A few numpy calls per block instead
        of per window. ``afters`` (int64) must decrease: the block's windows in order.
        """
        w, k = self.window, len(step_errors)
        if k < 2 or self.delay != w - 1:
            return None
        ends = self._end - afters  # strictly increasing: one block's windows, in order
        starts = ends - w
        first_start = int(starts[0])
        if first_start < 0 or first_start + 1 <= self._start:
            return None
        lo, hi = first_start, int(ends[-1])
        offsets = (starts - lo)[:, None] + self._steps_index
        weighted = (np.stack(step_errors) * self.weights).sum(axis=2)  # [k, window], as add_window rounds it
        acc = self._acc
        index = np.concatenate([self._span_index(hi - lo), offsets.ravel()])
        acc[0, lo:hi] = np.bincount(index, weights=np.concatenate([acc[0, lo:hi], weighted.ravel()]),
                                    minlength=hi - lo)
        acc[1, lo:hi] += np.bincount(offsets.ravel(), minlength=hi - lo)
        last = starts + 1  # = ends - delay
        first = np.concatenate([[self._start], last[:-1]])
        a, b = self._start, int(last[-1])
        np.divide(acc[0, a:b], acc[1, a:b], out=self.scores[a:b])
        self._start, self.first, self.last = b, int(first[-1]), b
        return first, last

    def _span_index(self, n: int) -> np.ndarray:
        if self._span.shape[0] < n:
            self._span = np.arange(2 * n, dtype=np.int64)
        return self._span[:n]

    def _make_room(self, incoming: int) -> None:
        """Move the pending rows (and the last window's reach) to the front; grow for a bigger block."""
        keep_from = max(0, min(self._start, self._end - self.window))
        n = self._end - keep_from
        if n + incoming > self._capacity:  # a bigger block than before: allocate once, keep it
            old = (self._acc, self.rows, self.times)
            self._allocate(2 * (n + incoming))
            self._acc[:, :n], self.rows[:n], self.times[:n] = (b[..., keep_from:self._end] for b in old)
        else:
            self._acc[:, :n] = self._acc[:, keep_from:self._end]
            self.rows[:n] = self.rows[keep_from:self._end]
            self.times[:n] = self.times[keep_from:self._end]
            self._acc[:, n:] = 0.0
        self._start -= keep_from
        self._end = n
