"""Sensor-fault events and their open/close lifecycle (the rules of :mod:`edge_agent.alerts`).

A :class:`Track` follows one (fault, feature): it opens an event with the
first faulty span and closes it once the fault has been absent for ``hold``
samples, so one fault gives exactly one open and one close whatever the block
sizes. Spans are whatever the checker judges at once (a chunk of samples, a block).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from enum import Enum

import numpy as np

from edge_agent.alerts import EventPhase


class SensorFault(str, Enum):
    FLATLINE = "flatline"
    CLIPPING = "clipping"
    DROPOUT = "dropout"
    OUT_OF_RANGE = "out_of_range"


@dataclass
class SensorFaultEvent:
    """One fault of one feature; emitted once when it opens and once when it closes.

    ``value``: the worst reading of the check (lowest chunk std for a
    flatline, highest share of a chunk at a bound for clipping, the reading
    farthest out for out of range, most samples lost at once for a dropout)
    and ``limit`` the limit it crossed. ``sample_count``: samples with the
    fault (flatline: the flat chunks' samples; clipping: samples at a bound;
    out of range: samples out of range; dropout: samples lost). ``close_reason``
    (closes only): ``normal`` when the fault cleared, else why it was closed
    (``agent_stopped``, ``end_of_stream``, ...).
    """

    event_id: str
    phase: EventPhase
    fault: SensorFault
    feature: str | None
    start_row: int
    end_row: int
    start_time: float | None
    end_time: float | None
    sample_count: int
    value: float
    limit: float
    close_reason: str | None = None


@dataclass
class Spans:
    """The faulty chunks (or blocks) of one (fault, feature) in one update, ascending."""

    first: np.ndarray  # first row of each
    last: np.ndarray  # last row of each
    first_time: np.ndarray | None
    last_time: np.ndarray | None
    counts: np.ndarray  # samples with the fault in each
    values: np.ndarray  # the worst reading of each
    severity: np.ndarray  # larger = worse
    limits: np.ndarray


class Track:
    """Open/close state of one (fault, feature)."""

    def __init__(self, fault: SensorFault, feature: str | None, hold: int) -> None:
        self.fault, self.feature, self.hold = fault, feature, hold
        self.event: SensorFaultEvent | None = None
        self.last_true = -1
        self.worst = -np.inf

    def feed(self, spans: Spans | None, end_row: int) -> list[tuple[int, SensorFaultEvent]]:
        """Account for the faulty spans of an update; the fault was absent elsewhere up to ``end_row``."""
        out: list[tuple[int, SensorFaultEvent]] = []
        if spans is not None and spans.first.size:
            if self.event is not None and spans.first[0] - self.last_true > self.hold:
                out.append(self.close("normal"))
            cuts = (np.flatnonzero(spans.first[1:] - spans.last[:-1] > self.hold) + 1).tolist()
            for a, b in zip([0, *cuts], [*cuts, spans.first.size], strict=True):
                if self.event is None:
                    out.append(self._open(spans, a))
                self._extend(spans, a, b)
                if b < spans.first.size:
                    out.append(self.close("normal"))
        if self.event is not None and end_row - self.last_true >= self.hold:
            out.append(self.close("normal"))
        return out

    def _open(self, spans: Spans, a: int) -> tuple[int, SensorFaultEvent]:
        row, time = int(spans.first[a]), _at(spans.first_time, a)
        self.event = SensorFaultEvent(uuid.uuid4().hex, EventPhase.OPEN, self.fault, self.feature, row, row,
                                      time, time, 0, float(spans.values[a]), float(spans.limits[a]))
        self.worst = float(spans.severity[a])
        return int(spans.last[a]), replace(self.event, end_row=int(spans.last[a]), end_time=_at(spans.last_time, a),
                            sample_count=int(spans.counts[a]))

    def _extend(self, spans: Spans, a: int, b: int) -> None:
        ev = self.event
        assert ev is not None
        ev.end_row = self.last_true = int(spans.last[b - 1])
        ev.end_time = _at(spans.last_time, b - 1)
        ev.sample_count += int(spans.counts[a:b].sum())
        i = a + int(np.argmax(spans.severity[a:b]))
        if spans.severity[i] > self.worst:
            self.worst = float(spans.severity[i])
            ev.value, ev.limit = float(spans.values[i]), float(spans.limits[i])

    def close(self, reason: str, at_row: int | None = None) -> tuple[int, SensorFaultEvent]:
        ev = self.event
        assert ev is not None
        self.event = None
        emit_row = self.last_true + self.hold if at_row is None else at_row
        return emit_row, replace(ev, phase=EventPhase.CLOSE, close_reason=reason)


def _at(times: np.ndarray | None, i: int) -> float | None:
    return None if times is None else float(times[i])
