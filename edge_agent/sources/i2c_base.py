"""Shared machinery of the I2C accelerometer drivers (ADXL345, MPU6050).

A driver only knows its chip: how to configure it (:meth:`_configure`), how many
samples wait in its FIFO, how to drain them as raw counts and how to detect an
overflow. This base class does the rest the same way for both chips:

- **Time base**: sample ``i`` (counted since :meth:`open`, lost samples included)
  is stamped ``start_time + i / rate``. Read-loop jitter does not move timestamps.
- **Blocking**: :meth:`read` polls the FIFO and sleeps (injected ``sleep``) until
  enough samples are waiting or ``timeout`` runs out; it never blocks longer.
- **Errors**: an ``OSError`` from the bus (sensor unplugged, brown-out, EMI) is
  counted in ``stats.read_errors``; the driver then re-initialises the chip with
  exponential backoff (a sensor that lost power comes back in its reset state).
  Samples the chip produced meanwhile are counted as lost: the next block
  carries ``gap_before`` and ``stats.gaps`` is incremented.
- **Stall**: a FIFO that stays empty for ``stall_s`` (at least 10 sample periods;
  a chip that reset silently stops sampling) is treated like an error: re-initialise.

Units: g (standard gravity multiples), not m/s^2: both datasheets specify the
scale in LSB/g, so g keeps the conversion a single exact division.
Dependencies are injected (``bus``, ``clock``, ``sleep``) so the tests can run
the drivers against ``tests/fake_i2c.py`` on a virtual clock.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from edge_agent.errors import VigilInputError
from edge_agent.sources.base import SampleBlock, SourceStats
from edge_agent.sources.retry import RetryTimer

AXES = ["x", "y", "z"]


def open_smbus(bus_number: int) -> Any:
    """``smbus2.SMBus(bus_number)`` with one-line errors for the usual Pi mistakes."""
    try:
        import smbus2
    except ImportError:
        raise VigilInputError("the I2C sources need smbus2: pip install 'vigil-edge[edge]'",
                              key="source.kind") from None
    try:
        return smbus2.SMBus(bus_number)
    except FileNotFoundError:
        raise VigilInputError(f"/dev/i2c-{bus_number} does not exist (is I2C enabled, "
                              "e.g. raspi-config -> Interface Options -> I2C?)", key="source.bus") from None
    except PermissionError:
        raise VigilInputError(f"no permission to open /dev/i2c-{bus_number} (add the user to "
                              "group i2c, or SupplementaryGroups=i2c in the unit)", key="source.bus") from None


class ChipError(Exception):
    """The chip answered but not as expected (wrong ID, configuration not kept)."""


class I2CAccelerometer:
    """Base class; subclasses set ``chip_name``, ``fifo_capacity`` (samples), and
    implement ``_configure``, ``_fifo_pending``, ``_drain``."""

    chip_name = "accelerometer"
    fifo_capacity = 32

    def __init__(self, *, bus: Any = None, bus_number: int = 1, address: int, rate_hz: float,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                 start_time: float | None = None, retry_min_s: float = 0.2, retry_max_s: float = 5.0,
                 stall_s: float = 1.0) -> None:
        self.features = list(AXES)
        self.sampling_rate_hz: float | None = float(rate_hz)
        self.stats = SourceStats()
        self.address = int(address)
        self.bus_number = int(bus_number)
        self._bus = bus
        self._own_bus = bus is None
        self._clock = clock
        self._sleep = sleep
        self._start_time = start_time
        self._retry = RetryTimer(retry_min_s, retry_max_s, clock, sleep)
        self._stall_s = max(float(stall_s), 10.0 / float(rate_hz))  # a few sample periods at least
        self._ready = False
        self._index = 0              # index of the next sample we will hand out
        self._drained_at = 0.0       # clock time up to which the chip's output is accounted for
        self._pending_gap = 0        # lost samples to report with the next block

    # ------------------------------------------------------------------ chip hooks

    def _configure(self) -> None:
        """Verify the chip ID, write the configuration, start the FIFO."""
        raise NotImplementedError

    def _fifo_pending(self) -> tuple[int, bool]:
        """(samples waiting, overflowed): overflowed means samples were lost."""
        raise NotImplementedError

    def _drain(self, n: int) -> np.ndarray:
        """Read ``n`` samples from the FIFO as float64 g ``[n, 3]``."""
        raise NotImplementedError

    # ------------------------------------------------------------------ Source API

    def open(self) -> None:
        """Open the bus and configure the chip; problems here are configuration errors."""
        if self._bus is None:
            self._bus = open_smbus(self.bus_number)
        try:
            self._configure()
        except ChipError as exc:
            raise VigilInputError(f"{self.chip_name} at I2C address 0x{self.address:02x} on bus "
                                  f"{self.bus_number}: {exc}", key="source.address") from None
        except OSError as exc:
            raise VigilInputError(f"no {self.chip_name} answering at I2C address 0x{self.address:02x} "
                                  f"on bus {self.bus_number} ({exc}); check wiring and the address "
                                  "(i2cdetect -y BUS)", key="source.address") from None
        now = self._clock()
        if self._start_time is None:
            self._start_time = time.time()
        self._drained_at = now
        self._ready = True

    def close(self) -> None:
        if self._bus is not None and self._own_bus:
            try:
                self._bus.close()
            except OSError:
                pass
        self._ready = False

    def read(self, timeout: float = 0.1) -> SampleBlock:
        """Next samples from the FIFO; an empty block when none arrived in time."""
        deadline = self._clock() + max(0.0, float(timeout))
        if not self._ready and not self._reinit(deadline):
            return self._empty()
        try:
            return self._poll(deadline)
        except (OSError, ChipError):
            self._fail()
            return self._empty()

    # ------------------------------------------------------------------ internals

    def _poll(self, deadline: float) -> SampleBlock:
        rate = float(self.sampling_rate_hz or 1.0)
        while True:
            pending, overflowed = self._fifo_pending()
            now = self._clock()
            if overflowed:
                self._account_overflow(now, pending)
                if pending == 0:  # chip had to drop the FIFO: nothing to read this round
                    self._drained_at = now
            # Wait for about half a FIFO (or what the timeout allows) to keep the
            # number of bus transactions and agent-loop iterations per sample low.
            target = max(1, min(self.fifo_capacity // 2, int(rate * (deadline - now))))
            if pending >= target or (pending > 0 and now >= deadline):
                return self._block(self._drain(pending), now)
            if pending == 0 and now - self._drained_at > self._stall_s:
                self.stats.extra["stalls"] = self.stats.extra.get("stalls", 0) + 1
                raise ChipError("FIFO stalled (chip reset?)")
            if now >= deadline:
                return self._empty()
            self._sleep(min(deadline - now, max((target - pending) / rate, 0.5 / rate)))

    def _account_overflow(self, now: float, pending: int) -> None:
        """Samples produced since the last drain but no longer in the FIFO were lost."""
        rate = float(self.sampling_rate_hz or 1.0)
        lost = int(round((now - self._drained_at) * rate)) - pending
        lost = max(lost, 1)  # the chip says it overflowed: at least one sample is gone
        self._add_gap(lost)

    def _add_gap(self, lost: int) -> None:
        if lost <= 0:
            return
        if self._pending_gap == 0:
            self.stats.gaps += 1
        self._pending_gap += lost
        self._index += lost
        self.stats.extra["lost_samples"] = self.stats.extra.get("lost_samples", 0) + lost

    def _block(self, values: np.ndarray, now: float) -> SampleBlock:
        k = int(values.shape[0])
        rate = float(self.sampling_rate_hz or 1.0)
        stamps = float(self._start_time or 0.0) + (self._index + np.arange(k, dtype=np.float64)) / rate
        self._index += k
        self._drained_at = now
        self.stats.samples += k
        gap, self._pending_gap = self._pending_gap, 0
        return SampleBlock(values.astype(np.float32), stamps, None, gap)

    def _empty(self) -> SampleBlock:
        return SampleBlock(np.empty((0, len(self.features)), dtype=np.float32), np.empty(0), None, 0)

    def _fail(self) -> None:
        self.stats.read_errors += 1
        self._ready = False
        self._retry.failed()

    def _reinit(self, deadline: float) -> bool:
        if not self._retry.wait_due(deadline):
            return False
        try:
            self._configure()
        except (OSError, ChipError):
            self._fail()
            return False
        now = self._clock()
        # Everything the chip measured since our last drain is gone (its FIFO was reset).
        self._add_gap(max(1, int(round((now - self._drained_at) * float(self.sampling_rate_hz or 1.0)))))
        self._drained_at = now
        self._ready = True
        self._retry.succeeded()
        self.stats.reconnects += 1
        return True


def rate_code_table(max_hz: float, n: int) -> dict[float, int]:
    """Rates halving from ``max_hz``: ``{max_hz: n-1, max_hz/2: n-2, ...}`` (ADXL345 BW_RATE)."""
    return {max_hz / 2 ** i: n - 1 - i for i in range(n)}


def is_close_rate(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-6)
