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
    """Streaming buffer that yields a window every ``hop`` samples.

    A block of samples is copied once onto the end of a linear buffer, and each
    window completed inside it is a contiguous slice (a view) of that buffer:
    one copy per read instead of two per hop, no per-sample allocation and no
    ``np.roll``. When the buffer is full, the last ``window - 1`` samples (all a
    later window can still use) move to its front; a bigger block than any
    before grows it once.
    """

    def __init__(self, spec: WindowSpec, n_features: int, dtype: type = np.float32) -> None:
        self.spec = spec
        self.n_features = n_features
        self._buf: np.ndarray = np.zeros((4 * spec.window, n_features), dtype=dtype)
        self._end = 0  # samples in use since the last move: the newest one is _buf[_end - 1]
        self._filled = 0
        self._since_emit = 0
        self.rows_seen = 0

    def reset(self) -> None:
        """Forget buffered rows (after a gap): the next window starts afresh."""
        self._end = 0
        self._filled = 0
        self._since_emit = 0

    def push(self, sample: np.ndarray) -> np.ndarray | None:
        """Add one ``[features]`` sample; return the completed window or None.

        The returned array is a view into the buffer that is valid until the
        next ``push``; copy it if you keep it.
        """
        for _, window in self.push_many(np.asarray(sample)[None]):
            return window
        return None

    def push_many(self, samples: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
        """Add ``[k, features]`` samples; yield ``(i, window)`` for each window completed at sample ``i``.

        Same windows as calling :meth:`push` per sample, but the samples are
        copied in one slice: at 1 kHz a per-sample Python call is most of the
        agent's CPU time. Each window is a view valid until the next push.
        """
        samples = np.asarray(samples)
        n = int(samples.shape[0])
        if n == 0:
            return iter(())
        start = self._write(samples)
        buf, w = self._buf, self.spec.window
        return ((i, buf[start + i + 1 - w:start + i + 1]) for i in self._emits(n))

    def _emits(self, n: int) -> range:
        """Indices (in a block of ``n`` new samples) where a window completes; advances the counters."""
        w, hop = self.spec.window, self.spec.hop
        if self._filled < w:
            pos = min(w - self._filled, n)
            self._filled += pos
            if self._filled < w:
                return range(0)
            emits = range(pos - 1, n, hop)  # the first window, then one every hop
        else:
            emits = range(hop - self._since_emit - 1, n, hop)  # the sample that completes the hop, ...
        self._since_emit = n - 1 - emits[-1] if len(emits) else self._since_emit + n
        return emits

    def _write(self, chunk: np.ndarray) -> int:
        """Append ``chunk`` (moving or growing the buffer first if needed); return where it starts."""
        w, n = self.spec.window, int(chunk.shape[0])
        self.rows_seen += n
        if self._end + n > self._buf.shape[0]:
            keep = min(self._end, w - 1)  # the samples a later window can still reach
            if keep + n > self._buf.shape[0]:
                grown = np.zeros((2 * (keep + n), self.n_features), dtype=self._buf.dtype)
                grown[:keep] = self._buf[self._end - keep:self._end]
                self._buf = grown
            else:
                self._buf[:keep] = self._buf[self._end - keep:self._end]
            self._end = keep
        start = self._end
        self._buf[start:start + n] = chunk
        self._end = start + n
        return start
