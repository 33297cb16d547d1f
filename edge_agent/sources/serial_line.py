"""Samples as text lines from a serial port (pyserial), e.g. a microcontroller.

Same line format as :mod:`edge_agent.sources.stdin` (one sample per line, comma
or whitespace separated; bad lines are counted bad samples). ``port`` is a device
(``/dev/ttyUSB0``, ``/dev/serial0``) or any pyserial URL (``socket://host:port``,
``rfc2217://...``).

A failing port (USB cable pulled, adapter reset: ``SerialException``/``OSError``)
is closed and reopened with exponential backoff (``reconnect_min_s`` doubling up
to ``reconnect_max_s``); every failure counts in ``stats.read_errors``, every
successful reopen in ``stats.reconnects``, and the first block after it carries
``gap_before`` (the estimated lines missed when ``rate_hz`` is known, else 1) so
the window restarts. A failure at :meth:`open` is a configuration error
(VigilInputError naming ``source.port``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from edge_agent.errors import VigilInputError
from edge_agent.sources.base import SampleBlock, SourceStats
from edge_agent.sources.retry import RetryTimer
from edge_agent.sources.stdin import LineParser, LineStamper, line_block


def _serial_module() -> Any:
    try:
        import serial
    except ImportError:
        raise VigilInputError("the serial source needs pyserial: pip install 'vigil-edge[edge]'",
                              key="source.kind") from None
    return serial


class SerialLineSource:
    """See the module docstring. ``opener`` (tests) returns an open pyserial port."""

    def __init__(self, port: str, features: list[str], *, baudrate: int = 115200, rate_hz: float | None = None,
                 delimiter: str = "auto", reconnect_min_s: float = 0.5, reconnect_max_s: float = 30.0,
                 opener: Callable[[], Any] | None = None, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep, start_time: float | None = None) -> None:
        self.port = port
        self.baudrate = int(baudrate)
        self.features = list(features)
        self.sampling_rate_hz = float(rate_hz) if rate_hz else None
        self.stats = SourceStats()
        self._parser = LineParser(features, delimiter)
        self._stamper = LineStamper(rate_hz, start_time)
        self._opener = opener or self._open_port
        self._clock, self._sleep = clock, sleep
        self._retry = RetryTimer(reconnect_min_s, reconnect_max_s, clock, sleep)
        self._lost_at: float | None = None
        self._pending_gap = 0
        self._ser: Any = None

    def _open_port(self) -> Any:
        return _serial_module().serial_for_url(self.port, baudrate=self.baudrate, timeout=0)

    def open(self) -> None:
        try:
            self._ser = self._opener()
        except (OSError, ValueError) as exc:  # SerialException is an IOError (OSError)
            raise VigilInputError(f"cannot open serial port {self.port!r}: {exc}", key="source.port") from None
        self._stamper.start()

    def close(self) -> None:
        self._drop_port()

    def read(self, timeout: float = 0.1) -> SampleBlock:
        timeout = max(0.0, float(timeout))
        if self._ser is None:  # reopen (or wait for the backoff); read on the next call
            self._reconnect(self._clock() + timeout)
            return self._block(b"")
        try:
            if self._ser.timeout != timeout:  # pyserial reconfigures the tty on every change
                self._ser.timeout = timeout
            data = self._ser.read(1)  # waits up to the timeout for the first byte
            if data:
                waiting = self._ser.in_waiting
                if waiting:
                    data += self._ser.read(waiting)
        except (OSError, ValueError, TypeError):  # SerialException, or a port closed under us
            self._fail()
            return self._block(b"")
        return self._block(data)

    # ------------------------------------------------------------------ internals

    def _block(self, data: bytes) -> SampleBlock:
        values, valid = self._parser.feed(data)
        self.stats.bad_samples = self._parser.bad_lines
        self.stats.samples += int(valid.sum())
        gap = 0
        if len(values) and self._pending_gap:
            gap, self._pending_gap = self._pending_gap, 0
        return line_block(values, valid, self._stamper.stamps(len(values)), gap)

    def _drop_port(self) -> None:
        if self._ser is not None:
            try:
                self._ser.close()
            except (OSError, ValueError):
                pass
        self._ser = None

    def _fail(self) -> None:
        self.stats.read_errors += 1
        self._drop_port()
        if self._lost_at is None:
            self._lost_at = self._clock()
        self._retry.failed()

    def _reconnect(self, deadline: float) -> bool:
        if not self._retry.wait_due(deadline):
            return False
        try:
            self._ser = self._opener()
        except (OSError, ValueError):
            self._fail()
            return False
        self._parser.reset()  # the partial line from before the outage is worthless
        self._note_gap()
        self._retry.succeeded()
        self.stats.reconnects += 1
        return True

    def _note_gap(self) -> None:
        now = self._clock()
        lost = 1
        if self.sampling_rate_hz and self._lost_at is not None:
            lost = max(1, int(round((now - self._lost_at) * self.sampling_rate_hz)))
            self._stamper.index += lost  # keep stamps on the sender's time axis
        self._lost_at = None
        self._pending_gap += lost
        self.stats.gaps += 1

