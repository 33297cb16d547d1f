"""Hand the pipeline blocks of about ``seconds`` of samples, however few rows one sensor read returns.

The pipeline's cost has a per-block part (sample quality, sensor-health checks,
one batched scoring call, the loop around them) that does not shrink with the
block: an ADXL345 read drains half its 32-sample FIFO, 60 blocks a second at
1 kHz, and a paced replay hands out what 0.1 s covers. :class:`BlockGatherer`
keeps reading until ``seconds`` worth of rows (at the source's rate) are in
hand or ``seconds`` have passed, and passes them on as one block: the same
samples, in the same order, fewer and larger blocks (the agent's CPU,
benchmarks/notes/footprint.md), for at most ``seconds`` more alert latency.

A block that follows lost samples (``gap_before``) is never merged into the
previous rows: it is held and starts the next block, so the pipeline still
sees every gap where it happened. The end of the stream and an exception from
``read`` are passed on after the rows read before them.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from edge_agent.sources.base import SampleBlock, Source


class BlockGatherer:
    """``read()`` with the :class:`~edge_agent.sources.base.Source` contract, over ``source``."""

    def __init__(self, source: Source, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.source = source
        self.seconds = float(seconds)
        self._clock = clock
        self._held: SampleBlock | None = None
        self._ended = False
        self._error: Exception | None = None

    def read(self) -> SampleBlock | None:
        """About ``seconds`` of samples (fewer at a gap, at the end, or when the sensor is slow)."""
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        deadline = self._clock() + self.seconds
        if self._held is not None:
            first, self._held = self._held, None
        elif self._ended:
            return None
        else:
            got = self.source.read(self.seconds)
            if got is None:
                return None
            first = got
        rate = self.source.sampling_rate_hz
        wanted = int(rate * self.seconds) if rate else 0
        if len(first) == 0 or len(first) >= wanted:
            return first
        return _joined(self._more(first, wanted, deadline))

    def _more(self, first: SampleBlock, wanted: int, deadline: float) -> list[SampleBlock]:
        parts, rows = [first], len(first)
        while rows < wanted:
            left = deadline - self._clock()
            if left <= 0:
                break
            try:
                block = self.source.read(left)
            except Exception as exc:  # after the rows already read (the agent counts it)
                self._error = exc
                break
            if block is None:
                self._ended = True
                break
            if len(block) == 0:  # nothing came in time (or a failed read): do not spin
                break
            if block.gap_before:
                self._held = block
                break
            parts.append(block)
            rows += len(block)
        return parts


def _joined(parts: list[SampleBlock]) -> SampleBlock:
    if len(parts) == 1:
        return parts[0]
    valid = None
    if any(p.valid is not None for p in parts):
        valid = np.concatenate([p.valid if p.valid is not None else np.ones(len(p), dtype=bool) for p in parts])
    return SampleBlock(np.concatenate([p.values for p in parts]), np.concatenate([p.timestamps for p in parts]),
                       valid, parts[0].gap_before)
