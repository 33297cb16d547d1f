"""ADXL345 3-axis accelerometer over I2C (smbus2), FIFO in stream mode.

Register use (Analog Devices ADXL345 datasheet, Rev. G):

- ``DEVID`` 0x00 must read 0xE5.
- ``BW_RATE`` 0x2C: output data rate code (0x0F = 3200 Hz, halving per step down
  to 0x06 = 6.25 Hz), LOW_POWER bit 4 left clear (low power adds noise).
- ``DATA_FORMAT`` 0x31: FULL_RES bit 3, range bits 1:0 (0 = +-2 g ... 3 = +-16 g),
  right-justified two's complement.
- ``FIFO_CTL`` 0x38: mode bits 7:6 = 10 (stream: the FIFO keeps the newest 32
  samples, overwriting the oldest), watermark bits 4:0. Written 0 (bypass) first,
  which empties the FIFO.
- ``POWER_CTL`` 0x2D: Measure bit 3 starts sampling; written 0 while configuring.
- ``FIFO_STATUS`` 0x39: entries in bits 5:0 (0..32).
- ``DATAX0..DATAZ1`` 0x32..0x37: one 6-byte burst pops one FIFO entry (the
  datasheet requires reading all six in one transaction), little-endian int16.

Scale: full resolution is 256 LSB/g at every range (the datasheet's "3.9 mg/LSB"
is 1/256 g = 3.90625 mg); 10-bit mode is ``2 * range_g / 1024`` g/LSB.
Overflow: stream mode has no lost-sample flag (the overrun bit only says "full"),
so a full FIFO is counted as an overflow when more samples were due since the
last drain than the FIFO holds; the excess is the number lost.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edge_agent.sources.i2c_base import ChipError, I2CAccelerometer, is_close_rate, rate_code_table

DEVID, DEVID_VALUE = 0x00, 0xE5
BW_RATE, POWER_CTL, DATA_FORMAT = 0x2C, 0x2D, 0x31
DATAX0, FIFO_CTL, FIFO_STATUS, INT_ENABLE = 0x32, 0x38, 0x39, 0x2E
MEASURE, FULL_RES, FIFO_STREAM = 0x08, 0x08, 0x80
FIFO_WATERMARK = 16
RANGE_BITS = {2: 0, 4: 1, 8: 2, 16: 3}
#: Output data rates (Hz) -> BW_RATE code, 3200 Hz (0x0F) halving down to 6.25 Hz (0x06).
RATE_CODES = rate_code_table(3200.0, 16)
SUPPORTED_RATES = tuple(sorted(rate for rate, code in RATE_CODES.items() if code >= 0x06))
DEFAULT_ADDRESS = 0x53  # SDO/ALT ADDRESS low; 0x1D when high


def rate_code(rate_hz: float) -> int:
    for rate, code in RATE_CODES.items():
        if code >= 0x06 and is_close_rate(rate, rate_hz):
            return code
    raise ValueError(f"ADXL345 rate must be one of {', '.join(f'{r:g}' for r in SUPPORTED_RATES)} Hz")


def scale_g_per_lsb(range_g: int, full_resolution: bool) -> float:
    if range_g not in RANGE_BITS:
        raise ValueError("ADXL345 range_g must be 2, 4, 8 or 16")
    return 1.0 / 256.0 if full_resolution else 2.0 * range_g / 1024.0


class ADXL345Source(I2CAccelerometer):
    """Axes x, y, z in g. See :class:`~edge_agent.sources.i2c_base.I2CAccelerometer`."""

    chip_name = "ADXL345"
    fifo_capacity = 32

    def __init__(self, *, address: int = DEFAULT_ADDRESS, rate_hz: float = 400.0, range_g: int = 4,
                 full_resolution: bool = True, **kwargs: Any) -> None:
        self._rate_code = rate_code(rate_hz)
        self.scale = scale_g_per_lsb(int(range_g), bool(full_resolution))
        self.range_g = int(range_g)
        self.full_resolution = bool(full_resolution)
        super().__init__(address=address, rate_hz=rate_hz, **kwargs)

    def _configure(self) -> None:
        bus, addr = self._bus, self.address
        devid = bus.read_byte_data(addr, DEVID)
        if devid != DEVID_VALUE:
            raise ChipError(f"DEVID is 0x{devid:02x}, expected 0x{DEVID_VALUE:02x} (not an ADXL345?)")
        data_format = (FULL_RES if self.full_resolution else 0) | RANGE_BITS[self.range_g]
        fifo_ctl = FIFO_STREAM | FIFO_WATERMARK
        bus.write_byte_data(addr, POWER_CTL, 0x00)      # standby while configuring
        bus.write_byte_data(addr, BW_RATE, self._rate_code)
        bus.write_byte_data(addr, DATA_FORMAT, data_format)
        bus.write_byte_data(addr, INT_ENABLE, 0x00)     # polled, no interrupt pins
        bus.write_byte_data(addr, FIFO_CTL, 0x00)       # bypass mode empties the FIFO
        bus.write_byte_data(addr, FIFO_CTL, fifo_ctl)
        bus.write_byte_data(addr, POWER_CTL, MEASURE)
        # Read back: a chip that does not keep its configuration is as bad as no chip.
        for reg, want in ((BW_RATE, self._rate_code), (DATA_FORMAT, data_format), (FIFO_CTL, fifo_ctl)):
            got = bus.read_byte_data(addr, reg)
            if got != want:
                raise ChipError(f"register 0x{reg:02x} reads 0x{got:02x} after writing 0x{want:02x}")

    def _fifo_pending(self) -> tuple[int, bool]:
        entries = self._bus.read_byte_data(self.address, FIFO_STATUS) & 0x3F
        if entries < self.fifo_capacity:
            return entries, False
        due = int(round((self._clock() - self._drained_at) * float(self.sampling_rate_hz or 1.0)))
        return entries, due > entries

    def _drain(self, n: int) -> np.ndarray:
        raw = bytearray()
        for _ in range(n):
            raw += bytes(self._bus.read_i2c_block_data(self.address, DATAX0, 6))
        counts = np.frombuffer(bytes(raw), dtype="<i2").reshape(n, 3)
        return counts.astype(np.float64) * self.scale
