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

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from edge_agent.alerts import EventPhase
from edge_agent.detection.fault_events import SensorFault, SensorFaultEvent, Spans, Track
from edge_agent.detection.settings import SensorHealthSettings
from edge_agent.detection.stats import FeatureStats
from edge_agent.sources.base import SampleBlock

__all__ = ["SensorFault", "SensorFaultEvent", "SensorHealthMonitor"]

#: A feature with fewer distinct levels than this in its training range is not checked for
#: clipping at the training bounds (a two-level status channel sits at them all the time).
MIN_LEVELS_FOR_BOUND_CLIPPING = 16
#: Flatline is not checked for a feature whose training chunks were flat more often than this.
MAX_TRAINING_FLAT_FRACTION = 0.001
#: Relative tolerance for "sitting at" a bound (float32 readings compared with float64 bounds).
BOUND_TOLERANCE = 1e-6


class SensorHealthMonitor:
    """Per-feature sensor-health checks on raw blocks; see the module docstring."""

    def __init__(self, settings: SensorHealthSettings, stats: Sequence[FeatureStats]) -> None:
        if not stats:
            raise ValueError("sensor health needs the training statistics of at least one feature")
        self.settings = settings
        self.stats = tuple(stats)
        self.features = [s.name for s in self.stats]
        self._limits = _FeatureLimits(settings, self.stats)
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
        out = self._dropout.feed(self._dropout_spans(first, missing, timestamps), first + k - 1)
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
        pos = 0
        if self._pending_count:
            pos = min(width - self._pending_count, k)
            self._pending[self._pending_count:self._pending_count + pos] = values[:pos]
            self._pending_count += pos
            if self._pending_count == width:
                last_time = None if stamps is None or self._pending_time is None else stamps[pos - 1:pos]
                first_time = None if last_time is None else np.array([self._pending_time])
                parts.append((self._pending[None].copy(), np.array([self._pending_row]),
                              np.array([first + pos - 1]), first_time, last_time))
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
        out: list[tuple[int, SensorFaultEvent]] = []
        for part in parts:
            out += self._judge(*part)
        return out

    def _judge(self, chunks: np.ndarray, first_rows: np.ndarray, last_rows: np.ndarray,
               first_times: np.ndarray | None, last_times: np.ndarray | None) -> list[tuple[int, SensorFaultEvent]]:
        out: list[tuple[int, SensorFaultEvent]] = []
        if self._limits.all_clear(chunks) and not any(t.event is not None for t in self._tracks.values()):
            return out  # the common case: nothing to open, nothing open to extend or close
        end_row = int(last_rows[-1])
        for fault, checked in self._limits.check(chunks).items():
            active = np.zeros(len(self.features), bool) if checked is None else np.asarray(checked.flags.any(axis=0))
            for i in range(len(self.features)):
                track = self._tracks[(fault, i)]
                if active[i] or track.event is not None:
                    spans = None
                    if checked is not None and active[i]:
                        spans = checked.spans(i, first_rows, last_rows, first_times, last_times)
                    out += track.feed(spans, end_row)
        return out


@dataclass
class _Checked:
    """One fault's verdict per chunk and feature, with what to report: all ``[chunks, features]``."""

    flags: np.ndarray
    counts: np.ndarray
    values: np.ndarray
    severity: np.ndarray
    limits: np.ndarray

    def spans(self, feature: int, first_rows: np.ndarray, last_rows: np.ndarray, first_times: np.ndarray | None,
              last_times: np.ndarray | None) -> Spans:
        idx = np.flatnonzero(self.flags[:, feature])
        return Spans(first_rows[idx], last_rows[idx], None if first_times is None else first_times[idx],
                     None if last_times is None else last_times[idx], self.counts[idx, feature],
                     self.values[idx, feature], self.severity[idx, feature], self.limits[idx, feature])


class _FeatureLimits:
    """Per-feature limits from the training statistics, and the vectorised checks on chunks."""

    def __init__(self, settings: SensorHealthSettings, stats: tuple[FeatureStats, ...]) -> None:
        self.settings = settings
        spread = np.array([s.spread for s in stats])
        lo = np.array([s.min for s in stats])
        hi = np.array([s.max for s in stats])
        margin = settings.out_of_range_margin * spread
        self.range_lo, self.range_hi = lo - margin, hi + margin
        reference = np.array([s.std if s.window_std is None else s.window_std for s in stats])
        self.flat_checked = np.array([_checks_flatline(s) for s in stats]) & (reference > 0)
        self.flat_limit = settings.flatline_std_ratio * reference
        self.bounds_checked = np.array([settings.clip_at_training_bounds and _checks_bounds(s, settings)
                                        for s in stats])
        resolution = np.array([s.resolution for s in stats])
        self.bound_lo, self.bound_hi = lo, hi
        self.bound_tol = np.maximum(resolution / 2, BOUND_TOLERANCE * np.maximum(np.abs(lo), np.abs(hi)))
        self.full_scale = settings.full_scale
        if settings.full_scale is not None:
            fs_lo, fs_hi = settings.full_scale
            self.full_scale_tol = np.maximum(resolution / 2, BOUND_TOLERANCE * (fs_hi - fs_lo))
        self._clear_limits(settings.check_samples)

    def _clear_limits(self, width: int) -> None:
        """Per-feature bounds inside which a chunk cannot be a candidate for any fault (see ``all_clear``)."""
        inf = np.full(self.range_hi.shape, np.inf)
        # high <= range_hi  <=>  high < nextafter(range_hi, +inf): one strict comparison for every fault.
        checked = self.bounds_checked
        highs = [np.nextafter(self.range_hi, np.inf), np.where(checked, self.bound_hi - self.bound_tol, inf)]
        lows = [np.nextafter(self.range_lo, -np.inf), np.where(checked, self.bound_lo + self.bound_tol, -inf)]
        if self.full_scale is not None:
            highs.append(self.full_scale[1] - self.full_scale_tol + np.zeros_like(inf))
            lows.append(self.full_scale[0] + self.full_scale_tol + np.zeros_like(inf))
        self.clear_hi = np.minimum.reduce(highs)
        self.clear_lo = np.maximum.reduce(lows)
        # spread >= this rules out a flatline (and a zero spread, for a flat check with ratio 0)
        self.clear_spread = np.where(self.flat_checked, np.maximum(self.flat_limit * np.sqrt(2 * width),
                                                                   np.nextafter(0.0, 1.0)), -np.inf)

    def all_clear(self, chunks: np.ndarray) -> bool:
        """True when no chunk of ``[chunks, samples, features]`` can flag any fault (NaN: not clear).

        The same candidate rules as :meth:`check`, folded into three comparisons
        of each chunk's max and min, so a healthy chunk costs a handful of numpy calls.
        """
        high, low = chunks.max(axis=1), chunks.min(axis=1)
        return bool(((high < self.clear_hi) & (low > self.clear_lo) & (high - low >= self.clear_spread)).all())

    def check(self, chunks: np.ndarray) -> dict[SensorFault, _Checked | None]:
        """Verdicts for ``chunks`` ``[chunks, samples, features]``; None for a fault found nowhere.

        Each chunk's max and min rule most chunks out cheaply (a healthy chunk
        is neither flat, nor at a bound, nor out of range); the detailed
        statistics are computed only when some chunk is a candidate.
        """
        with np.errstate(invalid="ignore"):
            high, low = chunks.max(axis=1), chunks.min(axis=1)
            complete = np.isfinite(high) & np.isfinite(low)
            if not complete.all():  # judge the readings there are; NaN / inf are no readings
                chunks = np.where(np.isfinite(chunks), chunks, np.nan)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN chunk: NaN max
                    high, low = np.nanmax(chunks, axis=1), np.nanmin(chunks, axis=1)
            return {
                SensorFault.FLATLINE: self._flatline(chunks, high - low, complete),
                SensorFault.CLIPPING: self._clipping(chunks, high, low),
                SensorFault.OUT_OF_RANGE: self._out_of_range(chunks, high, low),
            }

    def _flatline(self, chunks: np.ndarray, spread: np.ndarray, complete: np.ndarray) -> _Checked | None:
        # std >= range / sqrt(2 n) for any n values: a wider chunk cannot be below the limit.
        width = chunks.shape[1]
        repeated = complete & (spread == 0)
        candidate = complete & self.flat_checked & (repeated | (spread < self.flat_limit * np.sqrt(2 * width)))
        if not candidate.any():
            return None
        std = np.where(repeated, 0.0, chunks.std(axis=1))
        flags = candidate & (repeated | (std < self.flat_limit))
        return _Checked(flags, np.full(flags.shape, width), std, -std, np.broadcast_to(self.flat_limit, flags.shape))

    def _clipping(self, chunks: np.ndarray, high: np.ndarray, low: np.ndarray) -> _Checked | None:
        candidate = np.zeros(high.shape, dtype=bool)
        if self.bounds_checked.any():
            candidate |= ((high >= self.bound_hi - self.bound_tol) | (low <= self.bound_lo + self.bound_tol)) \
                & self.bounds_checked
        if self.full_scale is not None:
            candidate |= (high >= self.full_scale[1] - self.full_scale_tol) \
                | (low <= self.full_scale[0] + self.full_scale_tol)
        if not candidate.any():
            return None
        at_bound = np.zeros(chunks.shape, dtype=bool)
        if self.bounds_checked.any():
            at_bound |= ((np.abs(chunks - self.bound_lo) <= self.bound_tol)
                         | (np.abs(chunks - self.bound_hi) <= self.bound_tol)) & self.bounds_checked
        if self.full_scale is not None:
            at_bound |= ((chunks <= self.full_scale[0] + self.full_scale_tol)
                         | (chunks >= self.full_scale[1] - self.full_scale_tol))
        counts = np.count_nonzero(at_bound, axis=1)  # NaN compares False: never at a bound
        share = counts / chunks.shape[1]
        flags = share >= self.settings.clip_fraction
        return _Checked(flags, counts, share, share, np.full(flags.shape, self.settings.clip_fraction))

    def _out_of_range(self, chunks: np.ndarray, high: np.ndarray, low: np.ndarray) -> _Checked | None:
        if not ((high > self.range_hi) | (low < self.range_lo)).any():
            return None
        excess = np.maximum(chunks - self.range_hi, self.range_lo - chunks)
        excess = np.where(np.isnan(excess), -np.inf, excess)
        worst = np.argmax(excess, axis=1)[:, None, :]
        severity = np.take_along_axis(excess, worst, axis=1)[:, 0, :]
        values = np.take_along_axis(chunks, worst, axis=1)[:, 0, :]
        limits = np.where(values > self.range_hi, self.range_hi, self.range_lo)
        return _Checked(severity > 0, np.count_nonzero(excess > 0, axis=1), values, severity, limits)


def _checks_flatline(stats: FeatureStats) -> bool:
    if stats.is_constant:
        return False  # flat is this feature's normal state
    return stats.flat_fraction is None or stats.flat_fraction <= MAX_TRAINING_FLAT_FRACTION


def _checks_bounds(stats: FeatureStats, settings: SensorHealthSettings) -> bool:
    if stats.is_constant:
        return False
    if stats.at_bounds_fraction is not None and stats.at_bounds_fraction >= settings.clip_fraction / 2:
        return False
    return not (stats.resolution > 0 and (stats.max - stats.min) / stats.resolution < MIN_LEVELS_FOR_BOUND_CLIPPING)
