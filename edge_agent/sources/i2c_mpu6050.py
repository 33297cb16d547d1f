"""MPU6050 accelerometer (gyro unused) over I2C (smbus2), FIFO burst reads.

Register use (InvenSense MPU-6000/6050 register map, Rev. 4.2):

- ``WHO_AM_I`` 0x75 must read 0x68 (whatever AD0 is).
- ``PWR_MGMT_1`` 0x6B = 0x01: wake up (SLEEP bit 6 clear), clock = PLL with X gyro.
- ``CONFIG`` 0x1A: DLPF_CFG bits 2:0; 1..6 keep the gyro output rate at 1 kHz,
  accel bandwidth 184/94/44/21/10/5 Hz.
- ``SMPLRT_DIV`` 0x19: sample rate = 1 kHz / (1 + div), so the configured rate
  must be 1000/n Hz (n = 1..256); the FIFO receives one accel frame per sample.
- ``ACCEL_CONFIG`` 0x1C: AFS_SEL bits 4:3; +-2/4/8/16 g = 16384/8192/4096/2048 LSB/g.
- ``FIFO_EN`` 0x23 = 0x08 (ACCEL_FIFO_EN only: 6-byte frames XH XL YH YL ZH ZL).
- ``USER_CTRL`` 0x6A: FIFO_EN bit 6, FIFO_RESET bit 2 (self-clearing).
- ``INT_ENABLE`` 0x38 = 0x10 (FIFO_OFLOW_EN) so ``INT_STATUS`` 0x3A bit 4 reports an
  overflow (cleared when read).
- ``FIFO_COUNTH/L`` 0x72/0x73: bytes in the FIFO (max 1024); ``FIFO_R_W`` 0x74:
  repeated reads pop bytes (bursts of 30 bytes = 5 frames; SMBus blocks are <= 32).

On overflow the chip drops the oldest *bytes*, so frame alignment is lost (1024 is
not a multiple of 6): the driver resets the FIFO and counts everything since the
last drain as lost. Big-endian int16 counts are divided by LSB/g: output in g.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edge_agent.sources.i2c_base import ChipError, I2CAccelerometer

WHO_AM_I, WHO_AM_I_VALUE = 0x75, 0x68
SMPLRT_DIV, CONFIG, ACCEL_CONFIG, FIFO_EN = 0x19, 0x1A, 0x1C, 0x23
INT_ENABLE, INT_STATUS, USER_CTRL, PWR_MGMT_1 = 0x38, 0x3A, 0x6A, 0x6B
FIFO_COUNTH, FIFO_R_W = 0x72, 0x74
ACCEL_FIFO_EN, USER_FIFO_EN, USER_FIFO_RESET = 0x08, 0x40, 0x04
FIFO_OFLOW_INT, CLOCK_PLL_XGYRO = 0x10, 0x01
FIFO_BYTES, FRAME_BYTES, BURST_FRAMES = 1024, 6, 5
LSB_PER_G = {2: 16384.0, 4: 8192.0, 8: 4096.0, 16: 2048.0}
AFS_SEL = {2: 0, 4: 1, 8: 2, 16: 3}
#: Accel low-pass bandwidth (Hz) -> DLPF_CFG (1..6; 0 and 7 switch the gyro rate to 8 kHz).
DLPF_CFG = {184: 1, 94: 2, 44: 3, 21: 4, 10: 5, 5: 6}
DEFAULT_ADDRESS = 0x68  # AD0 low; 0x69 when high


def sample_rate_divider(rate_hz: float) -> int:
    """SMPLRT_DIV for ``rate_hz``; only exact divisors of 1 kHz are possible."""
    div = int(round(1000.0 / float(rate_hz))) - 1
    if not 0 <= div <= 255 or abs(1000.0 / (div + 1) - float(rate_hz)) > 1e-6 * float(rate_hz):
        raise ValueError("MPU6050 rate_hz must be 1000/n Hz for n = 1..256 (e.g. 1000, 500, 250, 200, 100, 50)")
    return div


def dlpf_config(dlpf_hz: int | str, rate_hz: float) -> int:
    """DLPF_CFG for a bandwidth in Hz, or "auto": the widest bandwidth below Nyquist."""
    if dlpf_hz == "auto":
        fitting = [bw for bw in DLPF_CFG if bw <= rate_hz / 2.0]
        return DLPF_CFG[max(fitting) if fitting else min(DLPF_CFG)]
    if dlpf_hz not in DLPF_CFG:
        raise ValueError(f"MPU6050 dlpf_hz must be \"auto\" or one of {', '.join(map(str, DLPF_CFG))}")
    return DLPF_CFG[int(dlpf_hz)]


class MPU6050Source(I2CAccelerometer):
    """Axes x, y, z in g. See :class:`~edge_agent.sources.i2c_base.I2CAccelerometer`."""

    chip_name = "MPU6050"
    fifo_capacity = FIFO_BYTES // FRAME_BYTES

    def __init__(self, *, address: int = DEFAULT_ADDRESS, rate_hz: float = 200.0, range_g: int = 4,
                 dlpf_hz: int | str = "auto", **kwargs: Any) -> None:
        if int(range_g) not in LSB_PER_G:
            raise ValueError("MPU6050 range_g must be 2, 4, 8 or 16")
        self.range_g = int(range_g)
        self.lsb_per_g = LSB_PER_G[self.range_g]
        self._div = sample_rate_divider(rate_hz)
        self._dlpf = dlpf_config(dlpf_hz, float(rate_hz))
        super().__init__(address=address, rate_hz=1000.0 / (self._div + 1), **kwargs)

    def _configure(self) -> None:
        bus, addr = self._bus, self.address
        who = bus.read_byte_data(addr, WHO_AM_I)
        if who != WHO_AM_I_VALUE:
            raise ChipError(f"WHO_AM_I is 0x{who:02x}, expected 0x{WHO_AM_I_VALUE:02x} (not an MPU6050?)")
        accel_config = AFS_SEL[self.range_g] << 3
        bus.write_byte_data(addr, PWR_MGMT_1, CLOCK_PLL_XGYRO)   # wake up, stable clock
        bus.write_byte_data(addr, SMPLRT_DIV, self._div)
        bus.write_byte_data(addr, CONFIG, self._dlpf)
        bus.write_byte_data(addr, ACCEL_CONFIG, accel_config)
        bus.write_byte_data(addr, INT_ENABLE, FIFO_OFLOW_INT)
        bus.write_byte_data(addr, FIFO_EN, ACCEL_FIFO_EN)
        self._reset_fifo()
        for reg, want in ((SMPLRT_DIV, self._div), (CONFIG, self._dlpf), (ACCEL_CONFIG, accel_config),
                          (FIFO_EN, ACCEL_FIFO_EN)):
            got = bus.read_byte_data(addr, reg)
            if got != want:
                raise ChipError(f"register 0x{reg:02x} reads 0x{got:02x} after writing 0x{want:02x}")

    def _reset_fifo(self) -> None:
        self._bus.write_byte_data(self.address, USER_CTRL, USER_FIFO_RESET)
        self._bus.write_byte_data(self.address, USER_CTRL, USER_FIFO_EN)
        self._bus.read_byte_data(self.address, INT_STATUS)  # clear a stale overflow flag

    def _fifo_pending(self) -> tuple[int, bool]:
        status = self._bus.read_byte_data(self.address, INT_STATUS)
        high, low = self._bus.read_i2c_block_data(self.address, FIFO_COUNTH, 2)
        count = (high << 8) | low
        if status & FIFO_OFLOW_INT or count >= FIFO_BYTES:
            self._reset_fifo()  # alignment is lost: drop what is there
            return 0, True
        return count // FRAME_BYTES, False

    def _drain(self, n: int) -> np.ndarray:
        raw = bytearray()
        left = n
        while left > 0:
            frames = min(left, BURST_FRAMES)
            raw += bytes(self._bus.read_i2c_block_data(self.address, FIFO_R_W, frames * FRAME_BYTES))
            left -= frames
        counts = np.frombuffer(bytes(raw), dtype=">i2").reshape(n, 3)
        return counts.astype(np.float64) / self.lsb_per_g
