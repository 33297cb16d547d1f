"""The source contract every sensor driver and replayer implements.

A source hands out blocks of samples ``[k, features]`` with one timestamp per
sample (seconds since the epoch, derived from the sample count and the data
rate, not from the moment the bus was read, so jitter in the read loop does not
bend the time axis). Problems are counted in :class:`SourceStats`, never raised
to the agent's loop: a flapping sensor must not crash the service.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass
class SampleBlock:
    """``values``: float32 ``[k, features]``; ``timestamps``: float64 ``[k]``.

    ``valid``: bool ``[k]``, False for samples the source already knows are bad
    (read error, NaN, gap filler). ``gap_before``: samples lost right before
    this block (FIFO overflow, sensor reset), so windows can be repaired or reset.
    """

    values: np.ndarray
    timestamps: np.ndarray
    valid: np.ndarray | None = None
    gap_before: int = 0

    def __len__(self) -> int:
        return int(self.values.shape[0])


@dataclass
class SourceStats:
    samples: int = 0
    read_errors: int = 0
    bad_samples: int = 0
    gaps: int = 0
    reconnects: int = 0
    extra: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, int]:
        return {
            "samples": self.samples,
            "read_errors": self.read_errors,
            "bad_samples": self.bad_samples,
            "gaps": self.gaps,
            "reconnects": self.reconnects,
            **self.extra,
        }


@runtime_checkable
class Source(Protocol):
    """Contract: ``features`` and ``sampling_rate_hz`` are known after ``open``;
    ``read`` returns the next block, an empty block when nothing is ready yet,
    or None when the stream has ended (replay without loop, stdin closed)."""

    features: list[str]
    sampling_rate_hz: float | None
    stats: SourceStats

    def open(self) -> None: ...

    def read(self, timeout: float = 0.1) -> SampleBlock | None: ...

    def close(self) -> None: ...
