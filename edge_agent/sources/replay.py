"""Replay a recorded file (CSV/TXT/NPY/WAV via :func:`edge_agent.readers.load_table`).

``pace = "fast"``: every :meth:`read` returns the next ``block_rows`` rows at once
(batch tests, the demo). ``pace = "realtime"``: row ``i`` becomes available
``i / (rate * speed)`` seconds after :meth:`open` (``speed`` > 1 replays faster
than it was recorded), so the agent sees the data as a live sensor would deliver
it, in batches of what one ``read(timeout)`` covers (at most ``block_rows``); if
the reader falls behind, rows come in blocks of at most ``MAX_BLOCK`` until it
catches up.

Timestamps: the file's own timestamp column when it has one (each ``loop`` pass
shifted by the file's span plus one period, so time keeps increasing); else
``start_time + i / rate`` (``start_time`` = wall clock at open); with no known
rate (``fast`` only), ``start_time + i`` (one second per row). A loop seam is not
reported as a gap (the rows are contiguous in the file's sense); ``stats.extra``
counts ``loops``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from edge_agent.errors import VigilInputError
from edge_agent.readers import load_table
from edge_agent.sources.base import SampleBlock, SourceStats

PACES = ("fast", "realtime")
MAX_BLOCK = 4096


class PacedRows:
    """Common part of the replay and synthetic sources: pacing, stamps, stats.

    Subclasses implement ``_take(k) -> (values [<=k, f], file_stamps | None)``,
    or None at the end of the stream.
    """

    def __init__(self, *, features: list[str], rate_hz: float | None, pace: str = "fast", speed: float = 1.0,
                 block_rows: int = 256, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep, start_time: float | None = None) -> None:
        if pace not in PACES:
            raise ValueError(f"pace must be one of {PACES}, got {pace!r}")
        if pace == "realtime" and not rate_hz:
            raise ValueError("realtime pacing needs a sampling rate")
        if not speed > 0 or block_rows < 1:
            raise ValueError("speed must be > 0 and block_rows >= 1")
        self.features = list(features)
        self.sampling_rate_hz: float | None = float(rate_hz) if rate_hz else None
        self.stats = SourceStats()
        self.pace, self.speed, self.block_rows = pace, float(speed), int(block_rows)
        self._clock, self._sleep = clock, sleep
        self._start_time = start_time
        self._t0 = 0.0
        self._released = 0
        self._ended = False

    def _take(self, k: int) -> tuple[np.ndarray, np.ndarray | None] | None:
        raise NotImplementedError

    def open(self) -> None:
        self._t0 = self._clock()
        if self._start_time is None:
            self._start_time = time.time()
        self._released = 0
        self._ended = False

    def close(self) -> None:
        self._ended = True

    def read(self, timeout: float = 0.1) -> SampleBlock | None:
        if self._ended:
            return None
        k = self.block_rows if self.pace == "fast" else self._wait_due(max(0.0, float(timeout)))
        if k == 0:
            return self._empty()
        got = self._take(k)
        if got is None:
            self._ended = True
            return None
        values, file_stamps = got
        n = len(values)
        if file_stamps is None:
            step = 1.0 / self.sampling_rate_hz if self.sampling_rate_hz else 1.0
            file_stamps = float(self._start_time or 0.0) + (self._released + np.arange(n)) * step
        self._released += n
        self.stats.samples += n
        return SampleBlock(np.asarray(values, dtype=np.float32), np.asarray(file_stamps, dtype=np.float64))

    def _due(self) -> int:
        """Rows whose (scaled) sample time has come; row 0 is due at open."""
        rate = float(self.sampling_rate_hz or 1.0) * self.speed
        return int(math.floor((self._clock() - self._t0) * rate + 1e-9)) + 1

    def _wait_due(self, timeout: float) -> int:
        """Rows to hand out now, after waiting (at most ``timeout``) for a batch.

        Like a sensor FIFO, rows are released in batches of what the timeout
        covers (at most ``block_rows``) rather than one by one, which keeps the
        agent loop's per-read overhead low at high rates.
        """
        rate = float(self.sampling_rate_hz or 1.0) * self.speed
        target = max(1, min(self.block_rows, int(rate * timeout)))
        available = self._due() - self._released
        if available < target:
            wait = self._t0 + (self._released + target - 1) / rate - self._clock()
            self._sleep(max(0.0, min(wait, timeout)))
            available = self._due() - self._released
            if wait <= timeout:
                available = max(available, target)  # float rounding must not cost a round trip
        return max(0, min(available, MAX_BLOCK))

    def _empty(self) -> SampleBlock:
        return SampleBlock(np.empty((0, len(self.features)), dtype=np.float32), np.empty(0))


class ReplaySource(PacedRows):
    """Rows of one file; ``features`` are the file's columns (or ``columns``)."""

    def __init__(self, path: str | Path, *, columns: list[str] | None = None,
                 rows: tuple[int | None, int | None] | None = None, timestamp_column: str | None = None,
                 rate_hz: float | None = None, pace: str = "realtime", speed: float = 1.0, loop: bool = False,
                 block_rows: int = 256, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep, start_time: float | None = None) -> None:
        # NaN/inf values are passed on: the sample-quality step skips or holds them, as for a live sensor.
        self.table = load_table(path, columns=columns, rows=rows, timestamp_column=timestamp_column,
                                allow_nonfinite=True)
        rate = rate_hz or self.table.sampling_rate_hz
        if pace == "realtime" and not rate:
            raise VigilInputError("has no sampling rate (no regular timestamp column, not a WAV); set "
                                  "source.rate_hz or use pace = \"fast\"", file=str(path), key="source.rate_hz")
        super().__init__(features=self.table.names, rate_hz=rate, pace=pace, speed=speed, block_rows=block_rows,
                         clock=clock, sleep=sleep, start_time=start_time)
        self.loop = bool(loop)
        self._pos = 0
        self._loops = 0
        stamps = self.table.timestamps
        self._span = 0.0
        if stamps is not None and len(stamps) > 0:
            period = 1.0 / rate if rate else float(np.median(np.diff(stamps))) if len(stamps) > 1 else 1.0
            self._span = float(stamps[-1] - stamps[0]) + period

    def open(self) -> None:
        super().open()
        self._pos = 0
        self._loops = 0

    def _take(self, k: int) -> tuple[np.ndarray, np.ndarray | None] | None:
        n = self.table.n_rows
        if self._pos >= n:
            if not self.loop:
                return None
            self._pos = 0
            self._loops += 1
            self.stats.extra["loops"] = self._loops
        end = min(self._pos + k, n)  # a block never crosses the loop seam
        values = self.table.values[self._pos:end]
        stamps = None
        if self.table.timestamps is not None:
            stamps = self.table.timestamps[self._pos:end] + self._loops * self._span
        self._pos = end
        return values, stamps
