"""ADXL345 / MPU6050 drivers against the register-level fake bus (tests/fake_i2c.py)."""

from __future__ import annotations

import numpy as np
import pytest

from edge_agent.errors import VigilInputError
from edge_agent.sources.i2c_adxl345 import ADXL345Source
from edge_agent.sources.i2c_mpu6050 import MPU6050Source
from tests.fake_i2c import FakeADXL345, FakeMPU6050, FakeSMBus, VirtualClock, constant_signal

T0 = 1000.0  # virtual clock start; also used as the drivers' start_time so stamps == fake time


def slow_sine(t: np.ndarray) -> np.ndarray:
    """1 Hz sine on x, constant y/z: values tell which instant a sample belongs to."""
    return np.stack([np.sin(2 * np.pi * t), np.full_like(t, 0.5), np.full_like(t, -1.0)], axis=1)


def adxl(clock: VirtualClock, chip: FakeADXL345, **kw) -> tuple[ADXL345Source, FakeSMBus]:
    bus = FakeSMBus(clock, {0x53: chip})
    src = ADXL345Source(bus=bus, clock=clock, sleep=clock.sleep, start_time=clock.now, **kw)
    return src, bus


def mpu(clock: VirtualClock, chip: FakeMPU6050, **kw) -> tuple[MPU6050Source, FakeSMBus]:
    bus = FakeSMBus(clock, {0x68: chip})
    src = MPU6050Source(bus=bus, clock=clock, sleep=clock.sleep, start_time=clock.now, **kw)
    return src, bus


def collect(src, seconds: float, clock: VirtualClock, timeout: float = 0.1):
    """Read for ``seconds`` of virtual time; returns (values, stamps, blocks)."""
    blocks = []
    end = clock.now + seconds
    while clock.now < end:
        block = src.read(timeout)
        assert block is not None
        if len(block):
            blocks.append(block)
    values = np.concatenate([b.values for b in blocks]) if blocks else np.empty((0, 3))
    stamps = np.concatenate([b.timestamps for b in blocks]) if blocks else np.empty(0)
    return values, stamps, blocks


# ----------------------------------------------------------------------------- ADXL345


def test_adxl345_init_writes_datasheet_registers():
    clock = VirtualClock(T0)
    chip = FakeADXL345(clock)
    src, bus = adxl(clock, chip, rate_hz=800.0, range_g=8)
    src.open()
    regs = chip.regs
    assert regs[0x2C] == 0x0D            # BW_RATE: 800 Hz code, LOW_POWER clear
    assert regs[0x31] == 0x08 | 0x02     # DATA_FORMAT: FULL_RES, +-8 g
    assert regs[0x38] >> 6 == 0b10       # FIFO_CTL: stream mode
    assert regs[0x2D] == 0x08            # POWER_CTL: measure
    # Standby first, measure last: configuration must not change while sampling.
    power_writes = [v for (_, reg, v) in bus.writes if reg == 0x2D]
    assert power_writes == [0x00, 0x08]
    assert src.features == ["x", "y", "z"] and src.sampling_rate_hz == 800.0


def test_adxl345_full_resolution_is_3_9_mg_per_lsb():
    clock = VirtualClock(T0)
    counts = lambda t: np.tile([100, -256, 512], (len(t), 1))  # noqa: E731
    src, _ = adxl(clock, FakeADXL345(clock, counts=counts), rate_hz=100.0, range_g=16)
    src.open()
    values, _, _ = collect(src, 0.5, clock)
    assert len(values) > 10
    # Datasheet: 3.9 mg/LSB (exactly 1/256 g) in full resolution at any range.
    np.testing.assert_allclose(values[0], [0.390625, -1.0, 2.0])
    assert abs(values[0, 0] - 100 * 0.0039) < 0.001


def test_adxl345_10_bit_mode_scale_depends_on_range():
    clock = VirtualClock(T0)
    counts = lambda t: np.tile([64, -128, 1], (len(t), 1))  # noqa: E731
    src, _ = adxl(clock, FakeADXL345(clock, counts=counts), rate_hz=100.0, range_g=4, full_resolution=False)
    src.open()
    values, _, _ = collect(src, 0.3, clock)
    # +-4 g over 10 bits: 8 g / 1024 LSB = 7.8 mg/LSB.
    np.testing.assert_allclose(values[0], [0.5, -1.0, 0.0078125])


def test_adxl345_values_and_timestamps_follow_the_chip_clock():
    clock = VirtualClock(T0)
    src, _ = adxl(clock, FakeADXL345(clock, signal=slow_sine), rate_hz=400.0, range_g=4)
    src.open()
    values, stamps, blocks = collect(src, 2.0, clock)
    assert src.stats.samples == len(values) and len(values) >= 790
    # Timestamps: start + i / rate, from the sample count (not the read time).
    np.testing.assert_allclose(stamps, T0 + np.arange(len(values)) / 400.0)
    # Values: the fake's signal at those instants, within one LSB (3.9 mg).
    np.testing.assert_allclose(values, slow_sine(stamps), atol=0.004)
    assert all(b.gap_before == 0 for b in blocks) and src.stats.gaps == 0
    assert max(len(b) for b in blocks) <= 32  # one FIFO at most per read


def test_adxl345_read_never_blocks_longer_than_timeout():
    clock = VirtualClock(T0)
    src, _ = adxl(clock, FakeADXL345(clock), rate_hz=6.25)
    src.open()
    for timeout in (0.0, 0.01, 0.05):
        before = clock.now
        src.read(timeout)
        assert clock.now - before <= timeout + 1e-12


def test_adxl345_fifo_overflow_is_counted_as_a_gap():
    clock = VirtualClock(T0)
    src, _ = adxl(clock, FakeADXL345(clock, signal=slow_sine), rate_hz=400.0)
    src.open()
    collect(src, 0.5, clock)
    read_so_far = src.stats.samples
    clock.advance(0.5)  # agent stalled: 200 samples due, the FIFO holds 32
    values, stamps, blocks = collect(src, 0.5, clock)
    assert src.stats.gaps == 1
    lost = blocks[0].gap_before
    assert 165 <= lost <= 170
    assert src.stats.extra["lost_samples"] == lost
    # After the gap the stamps still follow the chip: sample count includes the lost ones.
    np.testing.assert_allclose(stamps[0], T0 + (read_so_far + lost) / 400.0)
    np.testing.assert_allclose(values, slow_sine(stamps), atol=0.02)


def test_adxl345_flapping_sensor_counts_errors_and_recovers():
    clock = VirtualClock(T0)
    chip = FakeADXL345(clock, signal=slow_sine)
    src, bus = adxl(clock, chip, rate_hz=200.0)
    src.open()
    bus.fail_between(T0 + 0.5, T0 + 1.7, power_cycle=True)  # brown-out: chip comes back reset
    values, stamps, blocks = collect(src, 3.0, clock)
    assert bus.failed_accesses > 0
    assert src.stats.read_errors >= 2          # the failing read and failed re-init attempts
    assert src.stats.reconnects == 1
    assert src.stats.gaps == 1
    assert chip.regs[0x2D] == 0x08 and chip.regs[0x2C] == 0x0B  # re-initialised: measuring at 200 Hz
    after = [b for b in blocks if b.timestamps[0] > T0 + 1.7]
    assert sum(len(b) for b in after) > 200      # producing samples again
    gap_block = next(b for b in blocks if b.gap_before > 0)
    assert gap_block.timestamps[0] > T0 + 1.6
    # Stamps stay on the chip's time axis across the outage (within two sample periods).
    np.testing.assert_allclose(values[:, 0], slow_sine(stamps)[:, 0], atol=2 * 2 * np.pi / 200 + 0.01)


def test_adxl345_silent_reset_is_detected_as_a_stall():
    clock = VirtualClock(T0)
    chip = FakeADXL345(clock, signal=slow_sine)
    src, _ = adxl(clock, chip, rate_hz=100.0, stall_s=0.5)
    src.open()
    collect(src, 0.5, clock)
    chip.power_on_reset()  # brown-out without a bus error: the chip just stops measuring
    values, stamps, blocks = collect(src, 2.0, clock)
    assert src.stats.extra["stalls"] == 1 and src.stats.reconnects == 1 and src.stats.gaps == 1
    assert chip.regs[0x2D] == 0x08 and len(values) > 100
    np.testing.assert_allclose(values, slow_sine(stamps), atol=2 * 2 * np.pi / 100 + 0.01)


def test_adxl345_wrong_chip_id_names_the_address_key():
    clock = VirtualClock(T0)
    src, _ = adxl(clock, FakeADXL345(clock, devid=0x00))
    with pytest.raises(VigilInputError) as err:
        src.open()
    assert err.value.key == "source.address" and "DEVID" in str(err.value)


def test_missing_device_is_a_one_line_config_error():
    clock = VirtualClock(T0)
    bus = FakeSMBus(clock, {})
    src = ADXL345Source(bus=bus, clock=clock, sleep=clock.sleep)
    with pytest.raises(VigilInputError) as err:
        src.open()
    assert err.value.key == "source.address" and "0x53" in str(err.value)


def test_missing_i2c_bus_device_names_the_bus_key(tmp_path):
    from edge_agent.sources import make_source

    src = make_source({"kind": "mpu6050", "bus": 97}, base_dir=tmp_path)  # real smbus2, no /dev/i2c-97
    with pytest.raises(VigilInputError) as err:
        src.open()
    assert err.value.key == "source.bus" and "/dev/i2c-97" in str(err.value)


def test_adxl345_rejects_unsupported_rate():
    with pytest.raises(ValueError, match="3200"):
        ADXL345Source(bus=object(), rate_hz=1000.0)


# ----------------------------------------------------------------------------- MPU6050


def test_mpu6050_init_writes_datasheet_registers():
    clock = VirtualClock(T0)
    chip = FakeMPU6050(clock)
    src, _ = mpu(clock, chip, rate_hz=200.0, range_g=8)
    src.open()
    regs = chip.regs
    assert regs[0x6B] == 0x01              # PWR_MGMT_1: awake, PLL clock
    assert regs[0x19] == 4                 # SMPLRT_DIV: 1 kHz / (1 + 4) = 200 Hz
    assert regs[0x1A] == 2                 # CONFIG: DLPF 94 Hz (widest at or below 100 Hz Nyquist)
    assert regs[0x1C] == 2 << 3            # ACCEL_CONFIG: AFS_SEL=2, +-8 g
    assert regs[0x23] == 0x08              # FIFO_EN: accel only
    assert regs[0x6A] & 0x40               # USER_CTRL: FIFO enabled
    assert src.sampling_rate_hz == 200.0


@pytest.mark.parametrize("range_g,lsb", [(2, 16384), (4, 8192), (8, 4096), (16, 2048)])
def test_mpu6050_scale_matches_datasheet(range_g, lsb):
    clock = VirtualClock(T0)
    counts = lambda t: np.tile([lsb, -lsb // 2, 1000], (len(t), 1))  # noqa: E731
    src, _ = mpu(clock, FakeMPU6050(clock, counts=counts), rate_hz=100.0, range_g=range_g)
    src.open()
    values, _, _ = collect(src, 0.3, clock)
    np.testing.assert_allclose(values[0], [1.0, -0.5, 1000.0 / lsb])


def test_mpu6050_16384_lsb_per_g_hand_checked():
    clock = VirtualClock(T0)
    counts = lambda t: np.tile([16384, -16384, 8192], (len(t), 1))  # noqa: E731
    src, _ = mpu(clock, FakeMPU6050(clock, counts=counts), rate_hz=100.0, range_g=2)
    src.open()
    values, _, _ = collect(src, 0.2, clock)
    np.testing.assert_array_equal(values[0], np.array([1.0, -1.0, 0.5], dtype=np.float32))


def test_mpu6050_values_and_timestamps():
    clock = VirtualClock(T0)
    src, _ = mpu(clock, FakeMPU6050(clock, signal=slow_sine), rate_hz=500.0, range_g=2)
    src.open()
    values, stamps, blocks = collect(src, 2.0, clock)
    assert len(values) >= 990 and src.stats.gaps == 0
    np.testing.assert_allclose(stamps, T0 + np.arange(len(values)) / 500.0)
    np.testing.assert_allclose(values, slow_sine(stamps), atol=1e-4)


def test_mpu6050_fifo_overflow_resets_fifo_and_counts_gap():
    clock = VirtualClock(T0)
    chip = FakeMPU6050(clock, signal=slow_sine)
    src, _ = mpu(clock, chip, rate_hz=1000.0)
    src.open()
    collect(src, 0.3, clock)
    clock.advance(0.5)  # 500 frames due, the FIFO holds 170
    values, stamps, blocks = collect(src, 0.5, clock)
    assert chip.overflows >= 1
    assert src.stats.gaps == 1
    gap = next(b.gap_before for b in blocks if b.gap_before)
    assert 495 <= gap <= 505      # everything since the last drain was discarded
    # Frames stay aligned after the reset: the values are the signal, not shuffled bytes.
    np.testing.assert_allclose(values, slow_sine(stamps), atol=2 * 2 * np.pi / 1000 + 1e-3)


def test_mpu6050_flapping_sensor_recovers():
    clock = VirtualClock(T0)
    chip = FakeMPU6050(clock, signal=constant_signal(0.0, 0.0, 1.0))
    src, bus = mpu(clock, chip, rate_hz=100.0)
    src.open()
    bus.fail_between(T0 + 0.3, T0 + 0.8)
    bus.fail_between(T0 + 1.0, T0 + 1.2)
    values, stamps, blocks = collect(src, 2.5, clock)
    assert src.stats.read_errors >= 2 and src.stats.reconnects == 2 and src.stats.gaps == 2
    assert chip.regs[0x6B] == 0x01  # woken up again after the power cycles
    assert (stamps > T0 + 1.3).sum() > 100
    np.testing.assert_allclose(values, np.tile([0.0, 0.0, 1.0], (len(values), 1)), atol=1e-4)
    assert np.all(np.diff(stamps) > 0)


def test_mpu6050_wrong_who_am_i():
    clock = VirtualClock(T0)
    src, _ = mpu(clock, FakeMPU6050(clock, who_am_i=0x70))
    with pytest.raises(VigilInputError) as err:
        src.open()
    assert err.value.key == "source.address" and "WHO_AM_I is 0x70" in str(err.value)


def test_mpu6050_rate_must_divide_1khz():
    with pytest.raises(ValueError, match="1000/n"):
        MPU6050Source(bus=object(), rate_hz=300.0)


def test_flapping_sensor_through_quality_and_windows_never_mixes_a_gap_into_a_window():
    """The agent's loop on a flapping ADXL345: no exception, windows resume after the
    outage, and every scored window holds consecutive samples only."""
    from edge_agent.core.windowing import WindowBuffer, WindowSpec
    from edge_agent.quality import SampleQuality

    clock = VirtualClock(T0)
    src, bus = adxl(clock, FakeADXL345(clock, signal=slow_sine), rate_hz=200.0)
    src.open()
    bus.fail_between(T0 + 1.0, T0 + 1.5)
    quality = SampleQuality(3, valid_range=(-16.0, 16.0), policy="skip", rate_hz=200.0)
    buffer = WindowBuffer(WindowSpec(window=32, hop=8), 3)
    since_reset: list[float] = []
    window_stamps = []
    while clock.now < T0 + 3.0:
        for run in quality.clean(src.read(0.1)):
            if run.reset_before:
                buffer.reset()
                since_reset = []
            for i in range(len(run.values)):
                since_reset.append(float(run.timestamps[i]))
                if buffer.push(run.values[i]) is not None:
                    window_stamps.append(np.array(since_reset[-32:]))
    assert src.stats.read_errors >= 1 and quality.gaps == 1 and quality.window_resets == 1
    assert any(w[0] > T0 + 1.5 for w in window_stamps)  # scoring resumed after the outage
    for stamps in window_stamps:
        np.testing.assert_allclose(np.diff(stamps), 1 / 200.0, atol=1e-9)
