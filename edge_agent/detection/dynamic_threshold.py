"""Causal nonparametric dynamic threshold (Hundman et al., KDD 2018, "Telemanom").

The paper picks, for a buffer of smoothed errors ``e``, the threshold
``epsilon = mean(e) + z * std(e)`` over a grid of ``z`` that maximises

    (Δmean / mean + Δstd / std) / (|e_above| + |E_seq|²)

where Δmean and Δstd are how much the mean and std fall when the errors above
``epsilon`` are removed, ``|e_above|`` counts those errors and ``|E_seq|`` the
contiguous runs they form: a good threshold removes few points, in few runs,
that explain much of the spread. ``z`` values that flag no error, more than
``max_sequences`` runs or ``max_anomalous_fraction`` of the buffer are not
eligible (the paper's sanity checks); with none eligible, ``z_max`` is used.

Streaming adaptation (what differs from the batch algorithm, and why):

- The buffer is a ring of the last ``buffer_windows`` smoothed window errors
  (bounded memory). The threshold is refitted every ``refit_every`` windows
  from the buffer as it is then (amortised cost: a few passes over the buffer
  and a sort of its tail, whatever the grid size). Every decision uses only
  past and present errors.
- Pruning (the paper's minimum percent decrease ``p``): the batch version keeps
  an anomalous sequence only if its peak exceeds the next lower peak (down to
  the largest non-anomalous error) by the fraction ``p``. Causally, a run of
  windows above the threshold becomes anomalous once its running peak ``P``
  satisfies ``(P - max_normal) / P >= prune_fraction``, where ``max_normal`` is
  the largest buffered error at or below the threshold (recomputed at each
  refit, raised by new normal errors in between). Until then the run is
  normal; once confirmed, the rest of the run is anomalous.
- The trained static threshold is a floor: ``threshold = max(epsilon, floor)``,
  so a quiet buffer cannot make the device hypersensitive. During warm-up
  (fewer than ``min_windows`` errors buffered) only the floor applies, without
  pruning, exactly like the static threshold.
- Errors enter the buffer capped at ``BUFFER_CAP_FACTOR`` times the
  threshold in force (once it has been fitted), so one big anomaly does not
  blind the device to the next smaller one for a buffer length.
- Non-finite errors never enter the buffer: NaN is normal (no evidence),
  +inf is anomalous against the threshold in force.
- The paper's error padding and the flipped (too-low error) search are not
  done: grouping is the event detector's job (k-of-n, m to close).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from edge_agent.detection.settings import DynamicThresholdSettings

#: Below this relative std the buffer is treated as constant (the criterion divides by it).
_FLAT_STD = 1e-12
#: An error enters the buffer capped at this multiple of the threshold in force (0 = no cap): one
#: large anomaly must not lift the threshold for a whole buffer length and hide the next, smaller
#: one, while a lasting level shift is still absorbed (the cap grows with the threshold each refit).
BUFFER_CAP_FACTOR = 2.0


class Decision(NamedTuple):
    """One window's verdict and the threshold in force (a tuple: cheap to build per window)."""

    anomalous: bool
    threshold: float


class DynamicThreshold:
    """Feed it the smoothed error of every scored window, in order; see the module docstring."""

    def __init__(self, params: DynamicThresholdSettings, static_floor: float) -> None:
        floor = float(static_floor)
        if not (math.isfinite(floor) and floor >= 0.0):
            raise ValueError(f"static floor must be a finite number >= 0, got {static_floor}")
        self.params = params
        self.floor = floor
        self._z = np.arange(params.z_min, params.z_max + params.z_step / 2, params.z_step)
        self._buffer = np.zeros(params.buffer_windows, dtype=np.float64)
        self._size = params.buffer_windows
        self._min_windows = params.min_windows
        self._refit_every = params.refit_every
        self.reset()

    # ------------------------------------------------------------------ public

    def reset(self) -> None:
        """Forget everything (a restart): warm-up starts again from an empty buffer."""
        self._fill = 0
        self._next = 0  # ring write position
        self._since_refit = 0
        self._epsilon: float | None = None
        self._threshold = self.floor
        self._max_normal = 0.0
        self._run_peak = 0.0
        self._run_confirmed = False
        self.refits = 0

    @property
    def threshold(self) -> float:
        return self._threshold

    @property
    def warming_up(self) -> bool:
        return self._fill < self.params.min_windows

    def update(self, smoothed_error: float) -> Decision:
        """Account for one window's smoothed error; return the verdict and the threshold in force."""
        return Decision(*self.decide(smoothed_error))

    def decide(self, score: float) -> tuple[bool, float]:
        """:meth:`update` as a plain tuple (the pipeline's threshold-decider shape); runs once per window."""
        error = float(score)
        if not math.isfinite(error):
            return error > self._threshold, self._threshold
        # The ring write, inline: this runs once per scored window.
        cap = BUFFER_CAP_FACTOR * self._threshold
        self._buffer[self._next] = error if cap <= 0.0 or error <= cap or self._epsilon is None else cap
        self._next += 1
        if self._next == self._size:
            self._next = 0
        if self._fill < self._size:
            self._fill += 1
            if self._fill < self._min_windows:
                return error > self.floor, self.floor
        self._since_refit += 1
        if self._since_refit >= self._refit_every or self._epsilon is None:
            self._refit()
        if error <= self._threshold:
            self._run_peak, self._run_confirmed = 0.0, False
            if error > self._max_normal:
                self._max_normal = error
            return False, self._threshold
        return self._judge_above(error), self._threshold

    def state(self) -> dict[str, Any]:
        """Small health summary; ``warming_up`` is true after every (re)start until the buffer fills."""
        return {
            "kind": "dynamic",
            "value": self._threshold,
            "floor": self.floor,
            "epsilon": self._epsilon,
            "buffer_fill": self._fill,
            "buffer_windows": self.params.buffer_windows,
            "warming_up": self.warming_up,
            "refits": self.refits,
        }

    # ------------------------------------------------------------------ internals

    def _judge_above(self, error: float) -> bool:
        """An error above the threshold: anomalous once its run's peak clears the pruning test."""
        if error > self._run_peak:
            self._run_peak = error
        if not self._run_confirmed:
            peak = self._run_peak
            self._run_confirmed = peak - self._max_normal >= self.params.prune_fraction * peak
        return self._run_confirmed

    def _refit(self) -> None:
        full = self._fill == self._buffer.size
        ring = self._buffer if full else self._buffer[: self._fill]
        epsilon = best_epsilon(ring, self._z, self.params, oldest=self._next if full else 0)
        self._epsilon = epsilon
        self._threshold = threshold = max(epsilon, self.floor)
        self._max_normal = max(float(np.max(ring, where=ring <= threshold, initial=0.0)), 0.0)
        self._since_refit = 0
        self.refits += 1


def best_epsilon(errors: np.ndarray, z_grid: np.ndarray, params: DynamicThresholdSettings,
                 oldest: int = 0) -> float:
    """The paper's threshold for a ring buffer of errors whose oldest element is at ``oldest``.

    Only the errors above the lowest candidate (``mean + z_min * std``, the
    buffer's thin tail) are sorted: the mean and std of the errors at or below
    each candidate are the whole buffer's minus the tail part above it, from
    the tail's cumulative sums (of deviations from the mean, so nothing cancels).
    """
    count = errors.size
    mean = float(errors.mean())
    centred = errors - mean
    total_square = float(centred @ centred)
    std = math.sqrt(total_square / count)
    if count < 2 or mean <= 0.0 or std <= _FLAT_STD * max(1.0, abs(mean)):
        return mean + params.z_max * std
    epsilons = mean + z_grid * std
    tail = np.flatnonzero(errors > epsilons[0])
    if tail.size == 0:
        return mean + params.z_max * std
    ordered = np.sort(centred[tail])
    sums = np.concatenate(([0.0], np.cumsum(ordered)))
    squares = np.concatenate(([0.0], np.cumsum(ordered * ordered)))
    split = np.searchsorted(ordered, z_grid * std, side="right").tolist()  # tail values at or below each epsilon
    runs = _runs_above(errors, epsilons, oldest, tail).tolist()
    # The criterion per grid value, on plain floats: the same IEEE operations, in the same order, as
    # the array expressions they replace (a grid of ~17 values costs more in numpy calls than in math).
    # The centred sums over the whole buffer are 0 and total_square; subtract the part above.
    sums_list, squares_list = sums.tolist(), squares.tolist()
    sum_all, square_all, tail_size = sums_list[-1], squares_list[-1], int(tail.size)
    limit_runs, limit_above = params.max_sequences, params.max_anomalous_fraction * count
    scores: list[float] = []
    for below_in_tail, n_runs in zip(split, runs, strict=True):
        n_above = tail_size - below_in_tail
        n_below = count - n_above
        kept = max(n_below, 1)
        shift = -(sum_all - sums_list[below_in_tail]) / kept
        spread = (total_square - (square_all - squares_list[below_in_tail])) / kept - shift * shift
        std_below = math.sqrt(spread) if spread > 0.0 else (spread if math.isnan(spread) else 0.0)
        gain = -shift / mean + (std - std_below) / std
        eligible = n_above > 0 and n_below > 0 and n_runs <= limit_runs and n_above < limit_above
        scores.append(gain / max(n_above + n_runs * n_runs, 1) if eligible else -math.inf)
    top = math.nan if any(math.isnan(v) for v in scores) else max(scores)  # np.max lets NaN through
    if not math.isfinite(top) or top < 0.0:
        return mean + params.z_max * std
    # Ties go to the larger z, as in the reference implementation's ascending ">=" scan.
    best = len(scores) - 1 - scores[::-1].index(top)
    return float(epsilons[best])


def _runs_above(errors: np.ndarray, epsilons: np.ndarray, oldest: int = 0,
                starts: np.ndarray | None = None) -> np.ndarray:
    """Number of contiguous runs of ``errors > eps`` in time order, for every (ascending) eps.

    ``errors`` is a ring whose oldest element is at ``oldest``: the element
    before index ``i`` in time is ``errors[i - 1]`` (index -1 wraps, as the
    ring does), except for the oldest, which nothing precedes. A run starts at
    ``i`` when ``errors[i] > eps >= errors[i - 1]``. Only errors above the
    lowest eps can start a run, usually the buffer's thin tail (``starts``,
    when the caller has them), so the [grid x candidates] comparison stays small.
    """
    if starts is None:
        starts = np.flatnonzero(errors > epsilons[0])
    if starts.size == 0:
        return np.zeros(epsilons.size, dtype=np.int64)
    values = errors[starts]
    before = errors[starts - 1]
    before[starts == oldest] = -np.inf
    grid = epsilons[:, None]
    return np.asarray(np.count_nonzero((values > grid) & (before <= grid), axis=1))
