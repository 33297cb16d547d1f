"""Per-feature limits from the training statistics and the vectorised sensor-fault checks on chunks.

:class:`FeatureLimits` holds, per feature, what :mod:`edge_agent.detection.sensor_faults`
judges a chunk of raw samples against (flatline, clipping, out of range) and runs
the checks: a quick max/min test rules out a healthy chunk, each fault's own
candidate test rules it out next, and only a candidate pays for the detailed
statistics. The device runs this once per chunk of samples.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

from edge_agent.detection.fault_events import SensorFault, Spans
from edge_agent.detection.settings import SensorHealthSettings
from edge_agent.detection.stats import FeatureStats

#: A feature with fewer distinct levels than this in its training range is not checked for
#: clipping at the training bounds (a two-level status channel sits at them all the time).
MIN_LEVELS_FOR_BOUND_CLIPPING = 16
#: Flatline is not checked for a feature whose training chunks were flat more often than this.
MAX_TRAINING_FLAT_FRACTION = 0.001
#: Relative tolerance for "sitting at" a bound (float32 readings compared with float64 bounds).
BOUND_TOLERANCE = 1e-6


#: A chunk's first / last stream rows and times: arrays, or plain lists for one chunk (no numpy call).
Rows = np.ndarray | list[int]
Times = np.ndarray | list[float]


def extremes_of(chunks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each chunk's per-feature max and min (``[chunks, features]``; NaN wherever a reading is NaN)."""
    high, low, _ = transposed_extremes(chunks)
    return high, low


def transposed_extremes(chunks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`extremes_of` and the ``[chunks, features, samples]`` copy they were reduced over.

    A max over the samples axis of ``[chunks, samples, few features]`` runs one short inner loop
    per sample; the copy's contiguous rows are twice as cheap in all, and counts reuse them.
    """
    samples_last = chunks.transpose(0, 2, 1).copy()
    return samples_last.max(axis=2), samples_last.min(axis=2), samples_last


@dataclass
class Checked:
    """One fault's verdict per chunk and feature, with what to report: all ``[chunks, features]``."""

    flags: np.ndarray
    counts: np.ndarray
    values: np.ndarray
    severity: np.ndarray
    limits: np.ndarray

    def spans(self, feature: int, first_rows: Rows, last_rows: Rows, first_times: Times | None,
              last_times: Times | None) -> Spans:
        idx = np.flatnonzero(self.flags[:, feature])
        return Spans(np.asarray(first_rows)[idx], np.asarray(last_rows)[idx],
                     None if first_times is None else np.asarray(first_times, dtype=np.float64)[idx],
                     None if last_times is None else np.asarray(last_times, dtype=np.float64)[idx],
                     self.counts[idx, feature],
                     self.values[idx, feature], self.severity[idx, feature], self.limits[idx, feature])


class FeatureLimits:
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
        self._clear_lists = (self.clear_hi.tolist(), self.clear_lo.tolist(), self.clear_spread.tolist())
        self._flat_width, self._flat_spread = width, self.flat_limit * np.sqrt(2 * width)
        # Clipping candidates and at-bound tests with the per-feature masks folded in (NaN = not checked).
        nan = np.full(checked.shape, np.nan)
        self._bound_lo_checked = np.where(checked, self.bound_lo, nan)
        self._bound_hi_checked = np.where(checked, self.bound_hi, nan)
        clip_hi, clip_lo = self._bound_hi_checked - self.bound_tol, self._bound_lo_checked + self.bound_tol
        if self.full_scale is not None:  # fmin / fmax: a NaN (unchecked) bound leaves the full-scale one
            clip_hi = np.fmin(clip_hi, self.full_scale[1] - self.full_scale_tol)
            clip_lo = np.fmax(clip_lo, self.full_scale[0] + self.full_scale_tol)
        self._clip_hi, self._clip_lo = clip_hi, clip_lo
        self._bounds_checked = np.stack([self._bound_lo_checked, self._bound_hi_checked])[:, None, None, :]
        self._bounds_checked_t = self._bounds_checked.transpose(0, 1, 3, 2).copy()  # [2, 1, features, 1]
        self._bound_tol_t = self.bound_tol[:, None]
        # per-feature candidate limits as floats, for one chunk judged in plain Python (_screen_one)
        self._screen_lists = (self.clear_spread.tolist(), clip_hi.tolist(), clip_lo.tolist(),
                              self.range_hi.tolist(), self.range_lo.tolist())
        self._clear_width = width

    def all_clear(self, chunks: np.ndarray, extremes: tuple[np.ndarray, np.ndarray] | None = None) -> bool:
        """True when no chunk of ``[chunks, samples, features]`` can flag any fault (NaN: not clear).

        The same candidate rules as :meth:`check`, folded into three comparisons
        of each chunk's max and min (``extremes``: ``(max, min)`` over axis 1, when the
        caller has them), so a healthy chunk costs two reductions and a few float compares.
        """
        high, low = extremes_of(chunks) if extremes is None else extremes
        if high.shape[0] == 1:  # one chunk (a device read): plain floats beat five numpy calls
            return all(h < ch and lo > cl and h - lo >= cs for h, lo, ch, cl, cs
                       in zip(high[0].tolist(), low[0].tolist(), self._clear_lists[0], self._clear_lists[1],
                              self._clear_lists[2], strict=True))
        return bool(((high < self.clear_hi) & (low > self.clear_lo) & (high - low >= self.clear_spread)).all())

    def check(self, chunks: np.ndarray, extremes: tuple[np.ndarray, np.ndarray] | None = None,
              found: tuple[bool, bool, bool] | None = None,
              samples_last: np.ndarray | None = None) -> dict[SensorFault, Checked | None]:
        """Verdicts for ``chunks`` ``[chunks, samples, features]``; None for a fault found nowhere.

        Each chunk's max and min rule most chunks out cheaply (a healthy chunk
        is neither flat, nor at a bound, nor out of range); the detailed
        statistics are computed only when some chunk is a candidate. ``found``: the chunk's
        :meth:`candidates` when the caller has them.
        """
        high, low = extremes_of(chunks) if extremes is None else extremes
        found = self.candidates(chunks, high, low) if found is None else found
        if found is not None:
            return self._screen_one(chunks, high, low, found, samples_last)
        with np.errstate(invalid="ignore"):
            complete: np.ndarray | bool = True  # every reading finite (a NaN or inf max / min makes the sum not)
            if not math.isfinite(float(high.sum()) - float(low.sum())):
                complete = np.isfinite(high) & np.isfinite(low)
            if isinstance(complete, np.ndarray) and not complete.all():  # judge the readings there are
                chunks = np.where(np.isfinite(chunks), chunks, np.nan)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN chunk: NaN max
                    high, low = np.nanmax(chunks, axis=1), np.nanmin(chunks, axis=1)
            return {
                SensorFault.FLATLINE: self._flatline(chunks, high - low, complete),
                SensorFault.CLIPPING: self._clipping(chunks, high, low),
                SensorFault.OUT_OF_RANGE: self._out_of_range(chunks, high, low),
            }

    def candidates(self, chunks: np.ndarray, high: np.ndarray, low: np.ndarray) -> tuple[bool, bool, bool] | None:
        """For one complete chunk: is it a flatline, clipping, out-of-range candidate? (None: judge with :meth:`check`).

        The candidate tests the fault checks start with, on plain floats (NaN limits compare
        False, as there); no candidate at all is exactly :meth:`all_clear`. None for several
        chunks, another width, or a missing reading (NaN / inf).
        """
        if high.shape[0] != 1 or chunks.shape[1] != self._clear_width:
            return None
        hs, ls = high[0].tolist(), low[0].tolist()
        if not math.isfinite(sum(hs) - sum(ls)):
            return None
        flat = clip = out = False
        for h, lo, cs, ch, cl, rh, rl in zip(hs, ls, *self._screen_lists, strict=True):  # one loop: few features
            flat = flat or h - lo < cs
            clip = clip or h >= ch or lo <= cl
            out = out or h > rh or lo < rl
        return flat, clip, out

    def _screen_one(self, chunks: np.ndarray, high: np.ndarray, low: np.ndarray, found: tuple[bool, bool, bool],
                    samples_last: np.ndarray | None = None) -> dict[SensorFault, Checked | None]:
        """:meth:`check` of one complete chunk whose :meth:`candidates` are known: numpy only for a candidate."""
        flat, clip, out = found
        return {
            SensorFault.FLATLINE: self._flatline(chunks, high - low, True) if flat else None,
            SensorFault.CLIPPING: self._clipping(chunks, high, low, True, samples_last) if clip else None,
            SensorFault.OUT_OF_RANGE: self._out_of_range(chunks, high, low) if out else None,
        }

    def _flatline(self, chunks: np.ndarray, spread: np.ndarray, complete: np.ndarray | bool) -> Checked | None:
        # std >= range / sqrt(2 n) for any n values: a wider chunk cannot be below the limit.
        width = chunks.shape[1]
        if width == self._clear_width:  # spread < clear_spread: checked and (spread == 0 or below the limit)
            if not (complete & (spread < self.clear_spread)).any():
                return None
        repeated = complete & (spread == 0)
        candidate = complete & self.flat_checked & (repeated | (spread < self._flat_spread_limit(width)))
        if not candidate.any():
            return None
        std = np.where(repeated, 0.0, chunks.std(axis=1))
        flags = candidate & (repeated | (std < self.flat_limit))
        return Checked(flags, np.full(flags.shape, width), std, -std, np.broadcast_to(self.flat_limit, flags.shape))

    def _flat_spread_limit(self, width: int) -> np.ndarray:
        if width != self._flat_width:
            self._flat_width, self._flat_spread = width, self.flat_limit * np.sqrt(2 * width)
        spread: np.ndarray = self._flat_spread
        return spread

    def _clipping(self, chunks: np.ndarray, high: np.ndarray, low: np.ndarray,
                  candidate_known: bool = False, samples_last: np.ndarray | None = None) -> Checked | None:
        # Unchecked features have NaN bounds here: NaN compares False, as the mask did.
        if not candidate_known and not ((high >= self._clip_hi) | (low <= self._clip_lo)).any():
            return None
        if samples_last is not None and self.full_scale is None:  # the same tests on the transposed copy
            near = np.abs(samples_last - self._bounds_checked_t) <= self._bound_tol_t  # [2, chunks, features, samples]
            counts = np.logical_or(near[0], near[1], out=near[0]).sum(axis=2)
        else:
            # |x - lo| <= tol or |x - hi| <= tol, both bounds in one pass: [2, chunks, samples, features]
            near = np.abs(chunks - self._bounds_checked) <= self.bound_tol
            at_bound = np.logical_or(near[0], near[1], out=near[0])
            if self.full_scale is not None:
                at_bound |= ((chunks <= self.full_scale[0] + self.full_scale_tol)
                             | (chunks >= self.full_scale[1] - self.full_scale_tol))
            counts = at_bound.sum(axis=1)  # NaN compares False: never at a bound
        width, fraction = chunks.shape[1], self.settings.clip_fraction
        if counts.shape[0] == 1 and not any(c / width >= fraction for c in counts[0].tolist()):
            return None  # no flag: nothing to report (the monitor treats it as found nowhere)
        share = counts / width
        flags = share >= fraction
        return Checked(flags, counts, share, share, np.full(flags.shape, fraction))

    def _out_of_range(self, chunks: np.ndarray, high: np.ndarray, low: np.ndarray) -> Checked | None:
        if not ((high > self.range_hi) | (low < self.range_lo)).any():
            return None
        excess = np.maximum(chunks - self.range_hi, self.range_lo - chunks)
        excess = np.where(np.isnan(excess), -np.inf, excess)
        worst = np.argmax(excess, axis=1)[:, None, :]
        severity = np.take_along_axis(excess, worst, axis=1)[:, 0, :]
        values = np.take_along_axis(chunks, worst, axis=1)[:, 0, :]
        limits = np.where(values > self.range_hi, self.range_hi, self.range_lo)
        return Checked(severity > 0, np.count_nonzero(excess > 0, axis=1), values, severity, limits)


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
