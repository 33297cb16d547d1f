"""BlockGatherer: FIFO-sized sensor reads become ~0.25 s blocks, with every sample, gap, end and error kept."""

from __future__ import annotations

import numpy as np
import pytest

from edge_agent.sources.base import SampleBlock, SourceStats
from edge_agent.sources.gather import BlockGatherer


class ScriptedSensor:
    """A sensor whose reads return the scripted blocks (None = end, an exception = raised); 1 ms per read."""

    features = ["x", "y", "z"]
    sampling_rate_hz: float | None = 1000.0

    def __init__(self, script: list) -> None:
        self.script = list(script)
        self.stats = SourceStats()
        self.now = 0.0
        self.reads: list[float] = []

    def clock(self) -> float:
        return self.now

    def open(self) -> None: ...

    def close(self) -> None: ...

    def read(self, timeout: float = 0.1) -> SampleBlock | None:
        self.reads.append(timeout)
        self.now += 0.001
        item = self.script.pop(0) if self.script else block(0, 0)
        if isinstance(item, Exception):
            raise item
        return item


def block(start: int, n: int, gap: int = 0, bad: tuple[int, ...] = ()) -> SampleBlock:
    rows = np.arange(start, start + n, dtype=np.float32)
    valid = None
    if bad:
        valid = np.ones(n, dtype=bool)
        valid[list(bad)] = False
    return SampleBlock(np.stack([rows, -rows, 2 * rows], axis=1), 1000.0 + rows.astype(np.float64) / 1000.0,
                       valid, gap)


def test_fifo_reads_are_joined_into_one_block_with_every_sample_in_order() -> None:
    sensor = ScriptedSensor([block(16 * i, 16, bad=(3,) if i == 2 else ()) for i in range(20)])
    reader = BlockGatherer(sensor, 0.25, clock=sensor.clock)
    first = reader.read()
    assert first is not None and len(first) == 256  # 16 reads of 16 rows: >= 250 rows (0.25 s at 1 kHz)
    assert np.array_equal(first.values[:, 0], np.arange(256, dtype=np.float32))
    assert np.array_equal(first.timestamps, 1000.0 + np.arange(256) / 1000.0)
    assert first.valid is not None and np.flatnonzero(~first.valid).tolist() == [35]
    assert len(sensor.reads) == 16 and max(sensor.reads) <= 0.25
    second = reader.read()
    assert second is not None and second.values[0, 0] == 256 and second.valid is None


def test_a_block_after_lost_samples_starts_the_next_block_with_its_gap() -> None:
    sensor = ScriptedSensor([block(0, 16), block(16, 16), block(40, 16, gap=8), block(56, 16)])
    reader = BlockGatherer(sensor, 0.25, clock=sensor.clock)
    before = reader.read()
    assert before is not None and len(before) == 32 and before.gap_before == 0
    after = reader.read()
    assert after is not None and after.gap_before == 8 and after.values[0, 0] == 40 and len(after) == 32


def test_rows_before_the_end_of_the_stream_come_first_then_the_end() -> None:
    sensor = ScriptedSensor([block(0, 16), block(16, 10), None])
    reader = BlockGatherer(sensor, 0.25, clock=sensor.clock)
    got = reader.read()
    assert got is not None and len(got) == 26
    assert reader.read() is None and reader.read() is None
    assert len(sensor.reads) == 3  # no read after the end


def test_a_read_error_is_raised_after_the_rows_read_before_it() -> None:
    sensor = ScriptedSensor([block(0, 16), OSError("bus error"), block(16, 16)])
    reader = BlockGatherer(sensor, 0.25, clock=sensor.clock)
    got = reader.read()
    assert got is not None and len(got) == 16
    with pytest.raises(OSError, match="bus error"):
        reader.read()
    nxt = reader.read()
    assert nxt is not None and nxt.values[0, 0] == 16


def test_an_empty_read_or_the_time_limit_hands_out_what_is_there() -> None:
    sensor = ScriptedSensor([block(0, 16), block(0, 0), block(16, 16)])
    reader = BlockGatherer(sensor, 0.25, clock=sensor.clock)
    got = reader.read()
    assert got is not None and len(got) == 16 and len(sensor.reads) == 2  # no spinning on empty reads

    slow = ScriptedSensor([block(16 * i, 16) for i in range(400)])
    slow_reader = BlockGatherer(slow, 0.25, clock=lambda: slow.now * 20)  # each read takes 20 ms
    timed = slow_reader.read()
    assert timed is not None and len(timed) < 250 and len(slow.reads) <= 14


def test_a_source_without_a_rate_or_a_big_read_is_passed_through() -> None:
    sensor = ScriptedSensor([block(0, 16), block(16, 16)])
    sensor.sampling_rate_hz = None
    reader = BlockGatherer(sensor, 0.25, clock=sensor.clock)
    got = reader.read()
    assert got is not None and len(got) == 16 and len(sensor.reads) == 1
    big = ScriptedSensor([block(0, 300)])
    got = BlockGatherer(big, 0.25, clock=big.clock).read()
    assert got is not None and len(got) == 300 and len(big.reads) == 1
