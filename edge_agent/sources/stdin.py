"""Samples as text lines on stdin (or any pipe / file descriptor).

Line format (shared with the serial source): one sample per line, the feature
values separated by commas or whitespace (``1.0,2.0,3.0`` or ``1.0 2.0 3.0``).
Blank lines and lines starting with ``#`` are ignored, and so is a first line
equal to the feature names (a header). Any other line that does not hold exactly
one number per feature is a **bad sample**: counted in ``stats.bad_samples`` and
delivered as a NaN row with ``valid=False``, so the quality policy treats it like
any other bad sample (it keeps its place on the time axis) and nothing crashes.

Timestamps: with ``rate_hz`` set, ``start_time + i / rate_hz`` (line ``i``,
bad lines included); without it the arrival time (wall clock) of the chunk.
"""

from __future__ import annotations

import os
import selectors
import sys
import time
from typing import BinaryIO

import numpy as np

from edge_agent.sources.base import SampleBlock, SourceStats

MAX_LINE_BYTES = 4096  # a "line" longer than this is noise (wrong baud rate, binary data)


class LineParser:
    """Bytes in, ``(values float64 [k, f], valid bool [k])`` out; keeps partial lines."""

    def __init__(self, features: list[str], delimiter: str = "auto") -> None:
        self.features = list(features)
        self.delimiter = delimiter
        self.bad_lines = 0
        self._pending = b""
        self._seen_line = False

    def reset(self) -> None:
        """Forget a partial line (after a reconnect its start is gone)."""
        self._pending = b""

    def feed(self, data: bytes, final: bool = False) -> tuple[np.ndarray, np.ndarray]:
        text = self._pending + data
        lines = text.split(b"\n")
        self._pending = b"" if final else lines.pop()
        if len(self._pending) > MAX_LINE_BYTES:
            self._pending = b""
            lines.append(b"\x00")  # counted as one bad sample below
        rows: list[list[float] | None] = []
        for raw in lines:
            row = self._parse(raw)
            if row is not False:
                rows.append(row)
        values = np.full((len(rows), len(self.features)), np.nan)
        valid = np.ones(len(rows), dtype=bool)
        for i, row in enumerate(rows):
            if row is None:
                valid[i] = False
            else:
                values[i] = row
        self.bad_lines += int((~valid).sum())
        return values, valid

    def _parse(self, raw: bytes) -> list[float] | None | bool:
        """A row, None for a bad line, False for a line to ignore."""
        line = raw.decode("utf-8", errors="replace").strip()
        if not line or line.startswith("#"):
            return False
        first, self._seen_line = not self._seen_line, True
        fields = self._split(line)
        if first and [f.strip() for f in fields] == self.features:
            return False
        if len(fields) != len(self.features):
            return None
        try:
            return [float(f) for f in fields]
        except ValueError:
            return None

    def _split(self, line: str) -> list[str]:
        if self.delimiter == "," or (self.delimiter == "auto" and "," in line):
            return [f.strip() for f in line.split(",")]
        return line.split()


class LineStamper:
    """Timestamps for line sources: from the line count and rate, else arrival time."""

    def __init__(self, rate_hz: float | None, start_time: float | None) -> None:
        self.rate = float(rate_hz) if rate_hz else None
        self.start_time = start_time
        self.index = 0

    def start(self) -> None:
        if self.start_time is None:
            self.start_time = time.time()

    def stamps(self, k: int) -> np.ndarray:
        if self.rate is None:
            return np.full(k, time.time())
        out = float(self.start_time or 0.0) + (self.index + np.arange(k)) / self.rate
        self.index += k
        return out


def line_block(values: np.ndarray, valid: np.ndarray, stamps: np.ndarray, gap_before: int = 0) -> SampleBlock:
    return SampleBlock(values.astype(np.float32), stamps, None if valid.all() else valid, gap_before)


class StdinSource:
    """Reads lines from ``stream`` (default: the process's stdin); ends at EOF."""

    def __init__(self, features: list[str], *, rate_hz: float | None = None, delimiter: str = "auto",
                 stream: BinaryIO | None = None, start_time: float | None = None) -> None:
        self.features = list(features)
        self.sampling_rate_hz = float(rate_hz) if rate_hz else None
        self.stats = SourceStats()
        self._parser = LineParser(features, delimiter)
        self._stamper = LineStamper(rate_hz, start_time)
        self._stream = stream
        self._selector: selectors.BaseSelector | None = None
        self._fd = -1
        self._eof = False

    def open(self) -> None:
        stream = self._stream if self._stream is not None else sys.stdin.buffer
        self._fd = stream.fileno()
        self._selector = selectors.DefaultSelector()
        try:
            self._selector.register(self._fd, selectors.EVENT_READ)
        except PermissionError:  # regular files cannot be polled; they are always readable
            self._selector = None
        self._stamper.start()

    def close(self) -> None:
        if self._selector is not None:
            self._selector.close()
            self._selector = None
        self._eof = True

    def read(self, timeout: float = 0.1) -> SampleBlock | None:
        if self._eof:
            return None
        if self._selector is not None and not self._selector.select(max(0.0, timeout)):
            return self._block(b"")
        data = os.read(self._fd, 65536)
        if not data:
            self._eof = True
            block = self._block(b"", final=True)
            return block if len(block) else None
        return self._block(data)

    def _block(self, data: bytes, final: bool = False) -> SampleBlock:
        values, valid = self._parser.feed(data, final)
        self.stats.bad_samples = self._parser.bad_lines
        self.stats.samples += int(valid.sum())
        return line_block(values, valid, self._stamper.stamps(len(values)))
