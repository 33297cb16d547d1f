"""Sensor-health faults on raw sample blocks: flatline, clipping, out of range, dropout.

A model scores what a sensor *says*; a stuck or saturated sensor is often
easier to reconstruct than a healthy one, so these faults are checked on the
raw samples, per feature, against the training statistics
(:class:`~edge_agent.detection.stats.FeatureStats`). The samples are judged in
consecutive chunks of ``check_samples`` samples, counted from the monitor's
start, so the verdicts do not depend on how the stream is cut into blocks and
a sensor's 10-sample reads cost a copy until a chunk is complete:

- ``flatline``: the chunk's std is below ``flatline_std_ratio`` times the
  training reference (the median std of a training chunk when known, else the
  training std), or its value never changes. Not checked for a feature that
  was constant (or often flat) in training: there, flat is normal.
- ``clipping``: at least ``clip_fraction`` of the chunk sits at the sensor's
  ``full_scale`` bounds, or at the training range's bounds (unless training
  sat there often or the feature has only a few levels).
- ``out_of_range``: a value beyond the training range by more than
  ``out_of_range_margin`` training stds (the resolution for a constant feature).
- ``dropout``: a block that lost at least ``dropout_min_missing`` samples
  (the caller's counts; :meth:`SensorHealthMonitor.process` takes the block's
  gap and invalid rows). ``feature`` is None: the whole sample was lost.

A chunk holding a missing reading (NaN) is not judged for flatline. Each
(fault, feature) has the lifecycle of the anomaly events of
:mod:`edge_agent.alerts`: an event opens with the first faulty chunk (its
first row), and closes once ``hold_samples`` samples have passed without the
fault; one fault gives exactly one open and one close. Python only loops over
features and events, never over samples.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from edge_agent.alerts import EventPhase
from edge_agent.detection.fault_events import SensorFault, SensorFaultEvent, Spans, Track
from edge_agent.detection.sensor_limits import FeatureLimits, Rows, Times, transposed_extremes
from edge_agent.detection.settings import SensorHealthSettings
from edge_agent.detection.stats import FeatureStats
from edge_agent.sources.base import SampleBlock

__all__ = ["SensorFault", "SensorFaultEvent", "SensorHealthMonitor"]

class SensorHealthMonitor:
    """Per-feature sensor-health checks on raw blocks; see the module docstring."""

    def __init__(self, settings: SensorHealthSettings, stats: Sequence[FeatureStats]) -> None:
        if not stats:
            raise ValueError("sensor health needs the training statistics of at least one feature")
        self.settings = settings
        self.stats = tuple(stats)
        self.features = [s.name for s in self.stats]
        self._limits = FeatureLimits(settings, self.stats)
        hold = settings.hold_samples
        self._tracks = {(fault, i): Track(fault, name, hold)
                        for fault in (SensorFault.FLATLINE, SensorFault.CLIPPING, SensorFault.OUT_OF_RANGE)
                        for i, name in enumerate(self.features)}
        self._dropout = Track(SensorFault.DROPOUT, None, hold)
        self.opened = {fault.value: 0 for fault in SensorFault}
        self.reset()

    # ------------------------------------------------------------------ public

    def reset(self) -> None:
        """Forget the pending samples and any open fault without emitting (a fresh start)."""
        # The chunk being filled: its samples so far, and where and when it began.
        self._pending = np.empty((self.settings.check_samples, len(self.features)), dtype=np.float64)
        self._pending_count = 0
        self._pending_row = 0
        self._pending_time: float | None = None
        self._next_row = 0
        for track in self._all_tracks():
            track.event, track.last_true = None, -1

    @property
    def samples_to_next_check(self) -> int:
        """Samples until the chunk being filled is judged (the pipeline cuts blocks there)."""
        return self.settings.check_samples - self._pending_count

    @property
    def dropout_open(self) -> bool:
        """A dropout fault is open (an update may close it whatever it holds)."""
        return self._dropout.event is not None

    @property
    def open_events(self) -> list[SensorFaultEvent]:
        return [t.event for t in self._all_tracks() if t.event is not None]

    def process(self, block: SampleBlock, first_row: int) -> list[SensorFaultEvent]:
        """One source block whose first sample is stream row ``first_row``.

        Invalid rows (``block.valid``) are not judged and count as missing,
        with the ``gap_before`` samples, towards a dropout.
        """
        values = np.asarray(block.values)
        missing = int(block.gap_before)
        if block.valid is not None:
            invalid = ~np.asarray(block.valid, dtype=bool)
            if invalid.any():
                values = values.astype(np.float64)  # a copy: the block stays as the source made it
                values[invalid] = np.nan
                missing += int(invalid.sum())
        return self.update(values, block.timestamps, first_row=first_row, missing=missing)

    def update(self, values: np.ndarray, timestamps: np.ndarray | None = None, *,
               first_row: int | None = None, missing: int = 0) -> list[SensorFaultEvent]:
        """Check ``values`` ``[k, features]`` (NaN = no reading); return the opens and closes, in row order.

        ``first_row``: the stream row of ``values[0]`` (default: right after the
        previous update); ``missing``: samples lost before or inside this block.
        """
        values = np.asarray(values)  # float32 from sources: cast to float64 where it is copied anyway
        if values.ndim != 2 or values.shape[1] != len(self.features):
            raise ValueError(f"expected [k, {len(self.features)}] values, got shape {values.shape}")
        first = self._next_row if first_row is None else int(first_row)
        k = values.shape[0]
        self._next_row = first + k
        count = self._pending_count
        if 0 < k < self.settings.check_samples - count and missing < self.settings.dropout_min_missing \
                and self._dropout.event is None:  # a read inside the chunk being filled: only a copy
            self._pending[count:count + k] = values
            if count == 0:
                self._pending_row = first
                self._pending_time = None if timestamps is None else float(timestamps[0])
            self._pending_count = count + k
            return []
        spans = self._dropout_spans(first, missing, timestamps)
        out = [] if spans is None and self._dropout.event is None else self._dropout.feed(spans, first + k - 1)
        if k:
            out += self._check_chunks(values, first, timestamps)
        if len(out) > 1:
            out.sort(key=lambda pair: pair[0])  # stable: an open precedes a close at the same row
        for _, ev in out:
            if ev.phase is EventPhase.OPEN:
                self.opened[ev.fault.value] += 1
        return [ev for _, ev in out]

    def close_all(self, reason: Any = "end_of_stream") -> list[SensorFaultEvent]:
        """Close every open fault (stop, end of stream) with ``reason`` (a string or a CloseReason)."""
        text = str(getattr(reason, "value", reason))
        return [t.close(text, at_row=t.last_true)[1] for t in self._all_tracks() if t.event is not None]

    def counters(self) -> dict[str, Any]:
        """Health fields: faults open now (``fault:feature``) and faults opened per kind."""
        return {
            "open": [f"{ev.fault.value}:{ev.feature or '*'}" for ev in self.open_events],
            "opened": dict(self.opened),
        }

    # ------------------------------------------------------------------ internals

    def _all_tracks(self) -> list[Track]:
        return [*self._tracks.values(), self._dropout]

    def _dropout_spans(self, first: int, missing: int, timestamps: np.ndarray | None) -> Spans | None:
        if missing < self.settings.dropout_min_missing:
            return None
        row = np.array([first])
        stamp = None if timestamps is None or len(timestamps) == 0 else np.asarray(timestamps[:1], np.float64)
        lost = np.array([float(missing)])
        return Spans(row, row, stamp, stamp, np.array([missing]), lost, lost,
                      np.array([float(self.settings.dropout_min_missing)]))

    def _check_chunks(self, values: np.ndarray, first: int,
                      timestamps: np.ndarray | None) -> list[tuple[int, SensorFaultEvent]]:
        """Complete the pending chunk, judge every chunk that is complete, keep the rest pending.

        Only a chunk's first and last row and time are kept: the rows of a
        chunk that spans blocks may have a gap between them, which is fine (a
        dropout is its own fault).
        """
        width, k = self.settings.check_samples, values.shape[0]
        stamps = None if timestamps is None else np.asarray(timestamps, dtype=np.float64)
        parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]] = []
        out: list[tuple[int, SensorFaultEvent]] = []
        pos = 0
        if self._pending_count:
            pos = min(width - self._pending_count, k)
            self._pending[self._pending_count:self._pending_count + pos] = values[:pos]
            self._pending_count += pos
            if self._pending_count == width:  # judged now, in place (nothing keeps a view of the chunk)
                first_time: list[float] | None = None
                last_time: list[float] | None = None
                if stamps is not None and self._pending_time is not None:
                    first_time, last_time = [self._pending_time], [float(stamps[pos - 1])]
                out += self._judge(self._pending[None], [self._pending_row], [first + pos - 1], first_time, last_time)
                self._pending_count = 0
        chunks = (k - pos) // width
        if chunks:
            starts = pos + width * np.arange(chunks)
            bulk = values[pos:pos + chunks * width].astype(np.float64).reshape(chunks, width, -1)
            parts.append((bulk, first + starts,
                          first + starts + width - 1, None if stamps is None else stamps[starts],
                          None if stamps is None else stamps[starts + width - 1]))
            pos += chunks * width
        if pos < k:  # the rest starts a new pending chunk
            self._pending[:k - pos] = values[pos:]
            self._pending_count = k - pos
            self._pending_row = first + pos
            self._pending_time = None if stamps is None else float(stamps[pos])
        for part in parts:
            out += self._judge(*part)
        return out

    def _judge(self, chunks: np.ndarray, first_rows: Rows, last_rows: Rows, first_times: Times | None,
               last_times: Times | None) -> list[tuple[int, SensorFaultEvent]]:
        out: list[tuple[int, SensorFaultEvent]] = []
        high, low, samples_last = transposed_extremes(chunks)  # shared by the quick test and the checks
        tracks, limits = self._tracks, self._limits
        found = limits.candidates(chunks, high, low)  # one chunk (a device read): per fault, on floats
        clear = not any(found) if found is not None else limits.all_clear(chunks, (high, low))
        any_open = any(t.event is not None for t in tracks.values())
        if clear and not any_open:
            return out  # the common case: nothing to open, nothing open to extend or close
        end_row = int(last_rows[-1])
        n = len(self.features)
        for fault, checked in limits.check(chunks, (high, low), found, samples_last).items():
            active: list[bool]
            if checked is None:  # found nowhere: only open events of this fault need feeding (to close)
                active = [False] * n
                if not any_open or not any(tracks[(fault, i)].event is not None for i in range(n)):
                    continue
            else:
                active = np.asarray(checked.flags.any(axis=0)).tolist()
            for i in range(n):
                track = tracks[(fault, i)]
                if active[i] or track.event is not None:
                    spans = None
                    if checked is not None and active[i]:
                        spans = checked.spans(i, first_rows, last_rows, first_times, last_times)
                    out += track.feed(spans, end_row)
        return out
