"""One rig per source kind: the real source plus what feeds it (a file, a pipe, a pty, a fake I2C bus).

Only hardware is emulated: the I2C chips by :mod:`tests.fake_i2c` on a virtual
clock, the USB-UART by a pty. ``RIGS[kind](tmp_path)`` builds a fresh rig;
``CAPABILITIES[kind]`` says which optional checks it supports.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge_agent.sources import make_source
from edge_agent.sources.base import Source
from edge_agent.sources.i2c_adxl345 import ADXL345Source
from edge_agent.sources.i2c_mpu6050 import MPU6050Source
from edge_agent.sources.serial_line import SerialLineSource
from edge_agent.sources.stdin import StdinSource
from tests.fake_i2c import FakeADXL345, FakeMPU6050, FakeSMBus, VirtualClock

LINES = b"1,2,3\n4,5,6\nnot a number\n7 8 9\n10,11\n12,13,14\n"  # 4 good lines, 2 bad (text, 2 values)


@dataclass
class SourceRig:
    name: str
    source: Source
    n_features: int
    good_rows: int
    bad_rows: int = 0  # the source flags these (valid=False) and counts them
    nonfinite_rows: int = 0  # delivered as they are (NaN in a file), for the quality step
    finite: bool = True
    feed: Callable[[], None] = lambda: None
    step: Callable[[], None] = lambda: None
    now: Callable[[], float] = time.monotonic
    clock_slack: float = math.inf  # real-clock rigs: only "did not hang" is checked
    idle_empty: bool = True  # nothing fed -> an idle read is empty (a chip measures on its own)
    fail: Callable[[], None] | None = None
    recovered: Callable[[], bool] = lambda: True
    cleanup: list[Callable[[], None]] = field(default_factory=list)


def replay_rig(tmp_path: Path) -> SourceRig:
    rows = np.arange(300, dtype=np.float32).reshape(100, 3)
    rows[40, 1] = np.nan
    np.save(tmp_path / "rows.npy", rows)
    source = make_source({"kind": "replay", "path": "rows.npy", "pace": "fast", "block_rows": 32},
                         base_dir=tmp_path)
    return SourceRig("replay", source, 3, good_rows=99, nonfinite_rows=1)


def synthetic_rig(tmp_path: Path) -> SourceRig:
    source = make_source({"kind": "synthetic", "rate_hz": 500.0, "n_rows": 700, "faults": True, "pace": "fast"})
    return SourceRig("synthetic", source, 3, good_rows=700)


def stdin_rig(tmp_path: Path) -> SourceRig:
    read_fd, write_fd = os.pipe()
    stream = os.fdopen(read_fd, "rb", buffering=0)
    source = StdinSource(["x", "y", "z"], rate_hz=100.0, stream=stream, start_time=0.0)
    state = {"open": True}

    def feed() -> None:
        os.write(write_fd, LINES)
        os.close(write_fd)
        state["open"] = False

    rig = SourceRig("stdin", source, 3, good_rows=4, bad_rows=2, feed=feed)
    rig.cleanup += [stream.close, lambda: os.close(write_fd) if state["open"] else None]
    return rig


def serial_rig(tmp_path: Path) -> SourceRig:
    import serial

    masters: list[int] = []
    state = {"fed_after_fail": False, "samples_at_fail": -1}

    def opener() -> Any:
        master, slave = os.openpty()
        port = serial.serial_for_url(os.ttyname(slave), baudrate=115200, timeout=0)
        os.close(slave)
        masters.append(master)
        return port

    source = SerialLineSource("pty", ["x", "y", "z"], rate_hz=100.0, reconnect_min_s=0.01, reconnect_max_s=0.05,
                              opener=opener, start_time=0.0)

    def fail() -> None:  # the USB cable is pulled
        state["samples_at_fail"] = source.stats.samples
        os.close(masters[-1])

    def step() -> None:
        if state["samples_at_fail"] >= 0 and len(masters) > 1 and not state["fed_after_fail"]:
            os.write(masters[-1], b"20,21,22\n")  # the adapter is back and the node keeps sending
            state["fed_after_fail"] = True

    rig = SourceRig("serial", source, 3, good_rows=4, bad_rows=2, finite=False,
                    feed=lambda: os.write(masters[-1], LINES) and None, step=step, fail=fail,
                    recovered=lambda: source.stats.samples > state["samples_at_fail"] >= 0)
    rig.cleanup.append(lambda: [_close_quietly(m) for m in masters])
    return rig


def _close_quietly(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass  # already closed by fail()


def _i2c_rig(kind: str, tmp_path: Path) -> SourceRig:
    clock = VirtualClock()
    if kind == "adxl345":
        chip: Any = FakeADXL345(clock)
        bus = FakeSMBus(clock, {0x53: chip})
        source: Source = ADXL345Source(bus=bus, clock=clock, sleep=clock.sleep, start_time=clock.now, rate_hz=100.0)
    else:
        chip = FakeMPU6050(clock)
        bus = FakeSMBus(clock, {0x68: chip})
        source = MPU6050Source(bus=bus, clock=clock, sleep=clock.sleep, start_time=clock.now, rate_hz=100.0)
    state = {"samples_at_fail": -1.0, "back_at": math.inf}

    def fail() -> None:  # a loose cable for half a second, the chip power-cycles
        state["samples_at_fail"] = source.stats.samples
        state["back_at"] = clock.now + 0.5
        bus.fail_between(clock.now, clock.now + 0.5, power_cycle=True)

    def recovered() -> bool:
        return clock.now > state["back_at"] and source.stats.samples > state["samples_at_fail"] + 10

    return SourceRig(kind, source, 3, good_rows=200, finite=False, now=clock, clock_slack=0.02, idle_empty=False,
                     fail=fail, recovered=recovered)


RIGS: dict[str, Callable[[Path], SourceRig]] = {
    "replay": replay_rig,
    "synthetic": synthetic_rig,
    "stdin": stdin_rig,
    "serial": serial_rig,
    "adxl345": lambda tmp_path: _i2c_rig("adxl345", tmp_path),
    "mpu6050": lambda tmp_path: _i2c_rig("mpu6050", tmp_path),
}
#: Optional checks each rig supports: "idle" (nothing is ready after open), "fail" (the device can fail).
CAPABILITIES: dict[str, set[str]] = {
    "replay": set(), "synthetic": set(), "stdin": {"idle"}, "serial": {"idle", "fail"},
    "adxl345": {"idle", "fail"}, "mpu6050": {"idle", "fail"},
}
