"""A fake smbus2 bus with register-level ADXL345 and MPU6050 emulations.

Only the hardware is fake: the drivers under test run unchanged. Time is a
:class:`VirtualClock` shared by the chips and the driver (its ``sleep`` advances
the clock), so FIFO filling, overflow and sensor outages are deterministic.

- Chips produce sample ``k`` at ``t0 + k / rate`` (``t0`` = when measuring / the
  FIFO started), value ``signal(t)`` in g, converted to counts with the range the
  driver wrote into the chip (an independent implementation of the datasheet
  scales), or ``counts(t)`` raw when a test wants to hand-check the conversion.
- FIFOs: ADXL345 stream mode keeps the newest 32 entries; MPU6050 keeps 1024
  bytes, drops the oldest bytes on overflow and sets INT_STATUS.FIFO_OFLOW.
- :meth:`FakeSMBus.fail_between` makes every access in a time window raise
  ``OSError(121)`` (flapping sensor); with ``power_cycle`` the chip comes back in
  its power-on state, so the driver must re-initialise it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import numpy as np

Signal = Callable[[np.ndarray], np.ndarray]  # times [k] -> values [k, 3]


class VirtualClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = float(start)

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(0.0, float(seconds))

    advance = sleep


def constant_signal(x: float, y: float, z: float) -> Signal:
    return lambda t: np.tile(np.array([x, y, z], dtype=np.float64), (len(t), 1))


class FakeChip:
    """Register file + sample production; subclasses define the chip."""

    def __init__(self, clock: VirtualClock, signal: Signal | None = None, counts: Signal | None = None) -> None:
        self.clock = clock
        self.signal = signal or constant_signal(0.0, 0.0, 1.0)
        self.counts = counts
        self.regs = bytearray(256)
        self.power_on_reset()

    def power_on_reset(self) -> None:
        raise NotImplementedError

    def produce(self, times: np.ndarray, lsb_per_g: float, limit: int) -> np.ndarray:
        raw = self.counts(times) if self.counts else np.round(self.signal(times) * lsb_per_g)
        return np.clip(np.asarray(raw), -limit, limit - 1).astype(np.int64)

    def read_byte(self, reg: int) -> int:
        return self.regs[reg]

    def write_byte(self, reg: int, value: int) -> None:
        self.regs[reg] = value & 0xFF

    def read_block(self, reg: int, length: int) -> list[int]:
        return [self.read_byte(reg + i) for i in range(length)]


class FakeADXL345(FakeChip):
    DEVID, BW_RATE, POWER_CTL, DATA_FORMAT = 0x00, 0x2C, 0x2D, 0x31
    DATAX0, FIFO_CTL, FIFO_STATUS = 0x32, 0x38, 0x39

    def __init__(self, clock: VirtualClock, signal: Signal | None = None, counts: Signal | None = None,
                 devid: int = 0xE5) -> None:
        self.devid = devid
        super().__init__(clock, signal, counts)

    def power_on_reset(self) -> None:
        self.regs[:] = bytes(256)
        self.regs[self.DEVID] = self.devid
        self.regs[self.BW_RATE] = 0x0A
        self.fifo: deque = deque()
        self.latest = np.zeros(3, dtype=np.int64)
        self.t0: float | None = None
        self.produced = 0
        self.overwritten = 0

    @property
    def rate(self) -> float:
        return 3200.0 / 2 ** (15 - (self.regs[self.BW_RATE] & 0x0F))

    def _scale(self) -> tuple[float, int]:
        fmt = self.regs[self.DATA_FORMAT]
        range_g = 2 << (fmt & 0x03)
        if fmt & 0x08:  # full resolution: 3.9 mg/LSB, 10..13 bits
            return 256.0, 256 * range_g
        return 512.0 / range_g, 512

    def tick(self) -> None:
        if self.t0 is None:
            return
        total = int(np.floor((self.clock.now - self.t0) * self.rate + 1e-9)) + 1
        new = total - self.produced
        if new <= 0:
            return
        keep = min(new, 33)  # only the newest entries can still be in a 32-deep FIFO
        ks = np.arange(total - keep, total)
        lsb, limit = self._scale()
        rows = self.produce(self.t0 + ks / self.rate, lsb, limit)
        stream = (self.regs[self.FIFO_CTL] >> 6) == 2
        for row in rows:
            if stream:
                if len(self.fifo) == 32:
                    self.fifo.popleft()
                    self.overwritten += 1
                self.fifo.append(row)
        self.overwritten += new - keep if stream else 0
        self.latest = rows[-1]
        self.produced = total

    def read_byte(self, reg: int) -> int:
        self.tick()
        if reg == self.FIFO_STATUS:
            return min(len(self.fifo), 32) & 0x3F
        return self.regs[reg]

    def write_byte(self, reg: int, value: int) -> None:
        self.tick()
        super().write_byte(reg, value)
        if reg == self.FIFO_CTL and (value >> 6) == 0:
            self.fifo.clear()
        if reg == self.POWER_CTL:
            measuring = bool(value & 0x08)
            if measuring and self.t0 is None:
                self.t0, self.produced = self.clock.now, 0
            elif not measuring:
                self.t0 = None

    def read_block(self, reg: int, length: int) -> list[int]:
        self.tick()
        if reg != self.DATAX0:
            return super().read_block(reg, length)
        row = self.fifo.popleft() if self.fifo else self.latest
        return list(np.asarray(row, dtype="<i2").tobytes())[:length]


class FakeMPU6050(FakeChip):
    SMPLRT_DIV, CONFIG, ACCEL_CONFIG, FIFO_EN = 0x19, 0x1A, 0x1C, 0x23
    INT_ENABLE, INT_STATUS, USER_CTRL, PWR_MGMT_1 = 0x38, 0x3A, 0x6A, 0x6B
    FIFO_COUNTH, FIFO_R_W, WHO_AM_I = 0x72, 0x74, 0x75

    def __init__(self, clock: VirtualClock, signal: Signal | None = None, counts: Signal | None = None,
                 who_am_i: int = 0x68) -> None:
        self.who_am_i = who_am_i
        super().__init__(clock, signal, counts)

    def power_on_reset(self) -> None:
        self.regs[:] = bytes(256)
        self.regs[self.WHO_AM_I] = self.who_am_i
        self.regs[self.PWR_MGMT_1] = 0x40  # asleep after power-up
        self.fifo = bytearray()
        self.t0: float | None = None
        self.produced = 0
        self.overflows = 0

    @property
    def rate(self) -> float:
        base = 1000.0 if self.regs[self.CONFIG] & 0x07 in range(1, 7) else 8000.0
        return base / (1 + self.regs[self.SMPLRT_DIV])

    def _running(self) -> bool:
        return (not self.regs[self.PWR_MGMT_1] & 0x40 and bool(self.regs[self.USER_CTRL] & 0x40)
                and bool(self.regs[self.FIFO_EN] & 0x08))

    def tick(self) -> None:
        if self.t0 is None or not self._running():
            return
        total = int(np.floor((self.clock.now - self.t0) * self.rate + 1e-9)) + 1
        new = total - self.produced
        if new <= 0:
            return
        keep = min(new, 1024 // 6 + 2)
        ks = np.arange(total - keep, total)
        lsb = 16384.0 / (1 << ((self.regs[self.ACCEL_CONFIG] >> 3) & 0x03))
        rows = self.produce(self.t0 + ks / self.rate, lsb, 32768)
        self.fifo += rows.astype(">i2").tobytes()
        if new > keep or len(self.fifo) > 1024:
            del self.fifo[: len(self.fifo) - 1024]  # the oldest bytes go: frames misalign
            self.regs[self.INT_STATUS] |= 0x10
            self.overflows += 1
        self.produced = total

    def read_byte(self, reg: int) -> int:
        self.tick()
        value = self.regs[reg]
        if reg == self.INT_STATUS:
            self.regs[reg] = 0  # cleared on read
        return value

    def write_byte(self, reg: int, value: int) -> None:
        self.tick()
        if reg == self.PWR_MGMT_1 and value & 0x80:
            self.power_on_reset()
            return
        super().write_byte(reg, value)
        if reg == self.USER_CTRL:
            if value & 0x04:
                self.fifo.clear()
                self.regs[reg] &= ~0x04 & 0xFF  # self-clearing bit
            if value & 0x40:
                self.t0, self.produced = self.clock.now, 0

    def read_block(self, reg: int, length: int) -> list[int]:
        self.tick()
        if reg == self.FIFO_R_W:
            out = bytes(self.fifo[:length]).ljust(length, b"\x00")
            del self.fifo[:length]
            return list(out)
        if reg == self.FIFO_COUNTH:
            count = len(self.fifo)
            return [count >> 8, count & 0xFF][:length]
        return super().read_block(reg, length)


class FakeSMBus:
    """The smbus2.SMBus methods the drivers use, routed to fake chips by address."""

    def __init__(self, clock: VirtualClock, chips: dict[int, FakeChip]) -> None:
        self.clock = clock
        self.chips = chips
        self.writes: list[tuple[int, int, int]] = []
        self.failures: list[list] = []  # [t0, t1, power_cycle, applied]
        self.failed_accesses = 0
        self.closed = False

    def fail_between(self, t0: float, t1: float, power_cycle: bool = True) -> None:
        self.failures.append([float(t0), float(t1), power_cycle, False])

    def _chip(self, address: int) -> FakeChip:
        now = self.clock.now
        for window in self.failures:
            t0, t1, power_cycle, applied = window
            if now >= t0 and power_cycle and not applied:
                window[3] = True
                for chip in self.chips.values():
                    chip.power_on_reset()
            if t0 <= now < t1:
                self.failed_accesses += 1
                raise OSError(121, "Remote I/O error")
        if address not in self.chips:
            raise OSError(121, "Remote I/O error")  # what a missing device looks like
        return self.chips[address]

    def read_byte_data(self, i2c_addr: int, register: int, force: bool | None = None) -> int:
        return self._chip(i2c_addr).read_byte(register)

    def write_byte_data(self, i2c_addr: int, register: int, value: int, force: bool | None = None) -> None:
        chip = self._chip(i2c_addr)
        self.writes.append((i2c_addr, register, value))
        chip.write_byte(register, value)

    def read_i2c_block_data(self, i2c_addr: int, register: int, length: int,
                            force: bool | None = None) -> list[int]:
        if not 1 <= length <= 32:
            raise ValueError("Desired block length over 32 bytes")  # what smbus2 says
        return self._chip(i2c_addr).read_block(register, length)

    def close(self) -> None:
        self.closed = True
