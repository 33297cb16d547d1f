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

from collections.abc import Sequence

import numpy as np

#: Blocks of up to this many windows (a device read) take the skewed-grid sum; longer (a replay's
#: 4096-row blocks) take one bincount: the grid would grow with the block squared.
SKEW_MAX_WINDOWS = 32
#: numpy's float add-reduce sums runs shorter than this left to right, longer ones pairwise.
PAIRWISE_MIN = 8


def sum_features(product: np.ndarray, out: np.ndarray) -> None:
    """``np.sum(product, axis=-1, out=out)``, bit for bit, in fewer numpy calls for a few features.

    numpy adds fewer than ``PAIRWISE_MIN`` elements left to right (pairwise summation starts at 8),
    so explicit left-to-right adds of the feature columns give its very sums; a reduction over a
    short last axis is slow (one inner loop per output element).
    """
    f = product.shape[-1]
    if f >= PAIRWISE_MIN:
        np.sum(product, axis=-1, out=out)
    elif f == 1:
        out[...] = product[..., 0]
    else:
        np.add(product[..., 0], product[..., 1], out=out)
        for i in range(2, f):
            np.add(out, product[..., i], out=out)


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
        self._skews: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[np.ndarray]]] = {}
        self._allocate(16 * (self.window + self.hop))  # room for many reads between moves
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
        sum_features(self._product, self._weighted[0])
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

    def add_windows(self, step_errors: list[np.ndarray],
                    afters: Sequence[int] | np.ndarray) -> tuple[list[int], list[int]] | None:
        """:meth:`add_window` for every window of one block at once; ``(first, last)`` index lists per window.

        Only with ``delay = window - 1`` (the rows a window finalizes are in
        no later window) and when every window finalizes a row: then the
        windows are added to the rows in the same order (sequential sums per
        row), so the sums are bit-identical to window-by-window; otherwise
        None (call :meth:`add_window` per window). A few numpy calls per block
        instead of per window. ``afters`` must decrease: the block's windows in order.
        """
        w, k = self.window, len(step_errors)
        if k < 2 or self.delay != w - 1:
            return None
        base = self._end - w
        listed = afters.tolist() if isinstance(afters, np.ndarray) else afters
        starts = [base - int(after) for after in listed]  # strictly increasing: one block's windows, in order
        if starts[0] < 0 or starts[0] + 1 <= self._start:
            return None
        stacked = step_errors  # [k, window, features]: numpy stacks the list in the multiply below
        hop = self.hop
        if k <= SKEW_MAX_WINDOWS and all(b - a == hop for a, b in zip(starts, starts[1:])):
            self._add_regular(stacked, starts[0], k)
        else:
            self._add_scattered(stacked, np.asarray(starts, dtype=np.int64), starts[-1] + w)
        last = [start + 1 for start in starts]  # = ends - delay
        first = [self._start, *last[:-1]]
        a, b = self._start, last[-1]
        np.divide(self._acc[0, a:b], self._acc[1, a:b], out=self.scores[a:b])
        self._start, self.first, self.last = b, first[-1], b
        return first, last

    def _add_regular(self, stacked: list[np.ndarray], lo: int, k: int) -> None:
        """Windows ``hop`` apart: laid out skewed in a ``[k + 1, span]`` grid whose rows are summed in order.

        Row 0 holds the running sums, row ``1 + j`` window ``j``'s weighted step errors at its offset
        and zeros elsewhere (adding 0.0 changes no sum), so one ``add.reduce`` over axis 0 adds, per
        row, the previous sum and then the windows in order: the sums of :meth:`add_window`.
        """
        skew = self._skews.get(k) or self._skew(k)
        grid, strided, counts, product, columns = skew
        # multiply + sum, as add_window rounds it (see sum_features), written straight into the skewed rows
        np.multiply(stacked, self.weights, out=product)
        if len(columns) == 1:
            strided[...] = columns[0]
        elif columns:
            np.add(columns[0], columns[1], out=strided)
            for column in columns[2:]:
                np.add(strided, column, out=strided)
        else:
            np.sum(product, axis=-1, out=strided)
        sums = self._acc[0, lo:lo + grid.shape[1]]
        grid[0] = sums
        np.add.reduce(grid, axis=0, out=sums)
        self._acc[1, lo:lo + grid.shape[1]] += counts

    def _skew(self, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[np.ndarray]]:
        """Cached per block size: the grid, its strided view of the windows' rows, the rows' window counts,
        the product buffer and its feature columns (none when numpy would sum them pairwise)."""
        w, h, f = self.window, self.hop, self.weights.shape[0]
        span = (k - 1) * h + w
        grid = np.zeros((k + 1, span), dtype=np.float64)
        # window j's row t sits at grid[1 + j, j * hop + t]: flat offset j * (span + hop) + t after row 0
        strided = np.lib.stride_tricks.as_strided(grid[1:].reshape(-1), shape=(k, w),
                                                  strides=((span + h) * grid.itemsize, grid.itemsize))
        covered = np.zeros(span, dtype=np.float64)
        for j in range(k):
            covered[j * h:j * h + w] += 1.0
        product = np.empty((k, w, f), dtype=np.float64)
        columns = [product[..., i] for i in range(f)] if f < PAIRWISE_MIN else []
        cached = self._skews[k] = (grid, strided, covered, product, columns)
        return cached

    def _add_scattered(self, stacked: list[np.ndarray], starts: np.ndarray, hi: int) -> None:
        """Any spacing, any count: one ``bincount`` adds the windows to the rows in order."""
        lo = int(starts[0])
        offsets = (starts - lo)[:, None] + self._steps_index
        weighted = (np.array(stacked) * self.weights).sum(axis=2)  # [k, window], as add_window rounds it
        acc = self._acc
        index = np.concatenate([self._span_index(hi - lo), offsets.ravel()])
        acc[0, lo:hi] = np.bincount(index, weights=np.concatenate([acc[0, lo:hi], weighted.ravel()]),
                                    minlength=hi - lo)
        acc[1, lo:hi] += np.bincount(offsets.ravel(), minlength=hi - lo)

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
