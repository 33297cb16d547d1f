"""Sliding windows over a ``[time, features]`` array, batch and streaming.

Window ``i`` covers rows ``[i*hop, i*hop + window)`` and *ends* at row
``i*hop + window - 1``. The batch function (:func:`sliding_windows`) and the
streaming ring buffer (:class:`WindowBuffer`) produce exactly the same windows
from the same rows; tests hold them to that.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class WindowSpec:
    """Window length and hop, in rows (samples)."""

    window: int
    hop: int = 1

    def __post_init__(self) -> None:
        if int(self.window) < 2:
            raise ValueError(f"window must be >= 2, got {self.window}")
        if int(self.hop) < 1:
            raise ValueError(f"hop must be >= 1, got {self.hop}")

    def count(self, n_rows: int) -> int:
        """Number of complete windows in ``n_rows`` rows."""
        if n_rows < self.window:
            return 0
        return (n_rows - self.window) // self.hop + 1


def _as_2d(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim == 1:
        return x[:, None]
    if x.ndim != 2:
        raise ValueError(f"expected a [time, features] array, got shape {x.shape}")
    return x


def sliding_windows(x: np.ndarray, spec: WindowSpec) -> np.ndarray:
    """All complete windows of ``x`` as a read-only ``[n, window, features]`` view."""
    x = _as_2d(x)
    n = spec.count(x.shape[0])
    if n == 0:
        return np.empty((0, spec.window, x.shape[1]), dtype=x.dtype)
    all_windows = np.lib.stride_tricks.sliding_window_view(x, spec.window, axis=0)
    # sliding_window_view puts the window axis last: [n_all, features, window].
    return all_windows[:: spec.hop].transpose(0, 2, 1)[:n]


def window_end_rows(n_rows: int, spec: WindowSpec) -> np.ndarray:
    """Row index at which each complete window ends (the streaming score time)."""
    n = spec.count(n_rows)
    return np.arange(n, dtype=np.int64) * spec.hop + (spec.window - 1)


def row_scores_from_windows(
    window_scores: np.ndarray, n_rows: int, spec: WindowSpec
) -> np.ndarray:
    """Per-row scores with streaming semantics.

    A row gets the score of the latest window that has ended at or before it
    (what a device would be reporting at that moment); rows before the first
    complete window get NaN.
    """
    window_scores = np.asarray(window_scores, dtype=np.float64)
    out = np.full(n_rows, np.nan)
    ends = window_end_rows(n_rows, spec)
    if len(ends) != len(window_scores):
        raise ValueError(f"{len(window_scores)} scores for {len(ends)} windows")
    if len(ends) == 0:
        return out
    rows = np.arange(ends[0], n_rows)
    idx = (rows - ends[0]) // spec.hop
    out[ends[0]:] = window_scores[np.minimum(idx, len(ends) - 1)]
    return out


class WindowBuffer:
    """Streaming ring buffer that yields a window every ``hop`` samples.

    Each sample is written twice (at ``i`` and ``i + window``) so the newest
    window is always one contiguous slice: no per-sample allocation and no
    ``np.roll`` on the hot path.
    """

    def __init__(self, spec: WindowSpec, n_features: int, dtype: type = np.float32) -> None:
        self.spec = spec
        self.n_features = n_features
        self._buf: np.ndarray = np.zeros((2 * spec.window, n_features), dtype=dtype)
        self._pos = 0
        self._filled = 0
        self._since_emit = 0
        self.rows_seen = 0

    def reset(self) -> None:
        """Forget buffered rows (after a gap): the next window starts afresh."""
        self._pos = 0
        self._filled = 0
        self._since_emit = 0

    def push(self, sample: np.ndarray) -> np.ndarray | None:
        """Add one ``[features]`` sample; return the completed window or None.

        The returned array is a view into the buffer that is valid until the
        next ``push``; copy it if you keep it.
        """
        w = self.spec.window
        self._buf[self._pos] = sample
        self._buf[self._pos + w] = sample
        self._pos = (self._pos + 1) % w
        self.rows_seen += 1
        if self._filled < w:
            self._filled += 1
            if self._filled < w:
                return None
            self._since_emit = 0
            return self._buf[self._pos : self._pos + w]
        self._since_emit += 1
        if self._since_emit < self.spec.hop:
            return None
        self._since_emit = 0
        return self._buf[self._pos : self._pos + w]

    def push_many(self, samples: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
        """Add ``[k, features]`` samples; yield ``(i, window)`` for each window completed at sample ``i``.

        Same windows as calling :meth:`push` per sample, but the samples between
        two windows are copied in one slice: at 1 kHz a per-sample Python call is
        most of the agent's CPU time. Each window is a view valid until the
        generator resumes; score it (or copy it) before asking for the next.
        """
        samples = np.asarray(samples)
        w, hop, n, i = self.spec.window, self.spec.hop, int(samples.shape[0]), 0
        while i < n:
            filling = self._filled < w
            need = w - self._filled if filling else hop - self._since_emit
            take = min(need, n - i)
            self._write(samples[i : i + take])
            i += take
            if filling:
                self._filled += take
            else:
                self._since_emit += take
            if take == need:
                self._since_emit = 0
                yield i - 1, self._buf[self._pos : self._pos + w]

    def _write(self, chunk: np.ndarray) -> None:
        # Plain slice copies (at most two per half, at the ring's wrap): fancy indexing with an
        # index array cost ~30 us per call here, a third of the pipeline's per-window budget.
        w, n = self.spec.window, int(chunk.shape[0])
        self.rows_seen += n
        if n > w:  # only the last w samples can still be in a window (hop > window)
            self._pos = (self._pos + n - w) % w
            chunk, n = chunk[n - w:], w
        pos = self._pos
        first = min(n, w - pos)
        buf = self._buf
        buf[pos:pos + first] = chunk[:first]
        buf[pos + w:pos + w + first] = chunk[:first]
        if first < n:
            rest = n - first
            buf[:rest] = chunk[first:]
            buf[w:w + rest] = chunk[first:]
        self._pos = (pos + n) % w
