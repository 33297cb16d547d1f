"""Samples as text lines on stdin (or any pipe / file descriptor).

Line format (shared with the serial source): one sample per line, the feature
values separated by commas or whitespace (``1.0,2.0,3.0`` or ``1.0 2.0 3.0``).
Blank lines and lines starting with ``#`` are ignored, and so is a first line
equal to the feature names (a header). Any other line that does not hold exactly
one number per feature is a **bad sample**: counted in ``stats.bad_samples`` and
delivered as a NaN row with ``valid=False``, so the quality policy treats it like
any other bad sample (it keeps its place on the time axis) and nothing crashes.
A line longer than ``MAX_LINE_BYTES`` (noise, binary data, a wrong baud rate on
serial) is skipped up to its newline without being parsed or buffered, and
counts as ONE bad sample however long it is (``overlong_lines`` in the stats).

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
        self.overlong_lines = 0
        self._pending = b""
        self._seen_line = False
        self._discarding = False  # inside an overlong line (already counted): skip to its newline

    def reset(self) -> None:
        """Forget a partial line (after a reconnect its start is gone)."""
        self._pending = b""
        self._discarding = False

    def feed(self, data: bytes, final: bool = False) -> tuple[np.ndarray, np.ndarray]:
        rows: list[list[float] | None] = []
        for raw in self._complete_lines(data, final):
            row = self._parse(raw)
            if not isinstance(row, bool):
                rows.append(row)
        return self._arrays(rows)

    def _complete_lines(self, data: bytes, final: bool) -> list[bytes | None]:
        """The lines ``data`` completes; None stands for an overlong line cut off here (already counted)."""
        text = self._pending + data
        self._pending = b""
        if self._discarding:
            end = text.find(b"\n")
            if end < 0:
                return []  # still inside the overlong line: nothing kept, nothing counted again
            text, self._discarding = text[end + 1:], False
        lines: list[bytes | None] = list(text.split(b"\n"))
        tail = b"" if final else lines.pop()
        if tail is not None and len(tail) > MAX_LINE_BYTES:
            self._discarding = True
            self.overlong_lines += 1
            lines.append(None)  # one bad sample for the whole line
        else:
            self._pending = tail or b""
        return lines

    def _arrays(self, rows: list[list[float] | None]) -> tuple[np.ndarray, np.ndarray]:
        values = np.full((len(rows), len(self.features)), np.nan)
        valid = np.ones(len(rows), dtype=bool)
        for i, row in enumerate(rows):
            if row is None:
                valid[i] = False
            else:
                values[i] = row
        self.bad_lines += int((~valid).sum())
        return values, valid

    def _parse(self, raw: bytes | None) -> list[float] | None | bool:
        """A row, None for a bad line, False for a line to ignore."""
        if raw is None or len(raw) > MAX_LINE_BYTES:
            if raw is not None:  # a whole overlong line inside one chunk: counted here, never parsed
                self.overlong_lines += 1
            self._seen_line = True
            return None
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
        self.stats.extra["overlong_lines"] = self._parser.overlong_lines
        self.stats.samples += int(valid.sum())
        return line_block(values, valid, self._stamper.stamps(len(values)))
