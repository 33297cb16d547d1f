"""Probation of a newly deployed bundle: is it scoring the machine the way its training said it would?

A bundle that loads and is signed can still be wrong for this machine (trained
on another sensor, a threshold fitted on too little data, a scaler from another
run). For its first ``[rollout] probation_windows`` windows the agent watches
the raw window scores (before smoothing and sensitivity, against the bundle's
own threshold) and accepts the bundle only if all of these hold:

1. every window was scored without an exception and every score is finite;
2. the scores vary (a model whose output does not depend on its input gives
   one constant score: the largest and smallest score of the probation are equal);
3. score distribution: the median score lies below the bundle's threshold.
   Every threshold strategy puts the threshold at or above a high quantile of
   the held-out normal scores (POT starts from the 98 % quantile, ``mean+k*std``
   is above the mean), so on a machine that runs normally a median above it
   means the model does not describe this machine;
4. alarm rate: the share of windows whose score exceeds the threshold is at
   most ``max_alarm_fraction``, derived from the training statistics in the
   manifest (:func:`bounds_for`): ten times the expected share for an
   empirical threshold (``threshold.params.heldout_exceedance`` / ``q_risk``),
   Cantelli's distribution-free bound ``1 / (1 + k^2)`` for ``mean+k*std``,
   never below 5 % (a short probation on a real machine sees real events) and
   never above 50 %; ``[rollout] max_alarm_fraction`` overrides it.

The probation fails early, as soon as a rule is broken for good (an exception,
a non-finite score, more alarms than the bound allows over the whole
probation), and fails when ``probation_timeout_s`` passes before enough
windows were scored (a bundle is never accepted unseen).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from edge_agent.bundle import Bundle

ALARM_FLOOR = 0.05
ALARM_CEILING = 0.5
EMPIRICAL_FACTOR = 10.0
FALLBACK_EXPECTED = 0.01


@dataclass(frozen=True)
class ProbationBounds:
    windows: int
    timeout_s: float
    threshold: float
    max_alarm_fraction: float
    basis: str  # how max_alarm_fraction was derived (shown in replies)

    def to_dict(self) -> dict[str, Any]:
        return {"windows": self.windows, "timeout_s": self.timeout_s, "threshold": self.threshold,
                "max_alarm_fraction": round(self.max_alarm_fraction, 6), "basis": self.basis}


def bounds_for(bundle: Bundle, windows: int, timeout_s: float,
               max_alarm_fraction: float | None = None) -> ProbationBounds:
    """The probation rules for ``bundle`` (see the module docstring for the derivation)."""
    if max_alarm_fraction is not None:
        fraction, basis = float(max_alarm_fraction), "rollout.max_alarm_fraction"
    else:
        fraction, basis = _derived_alarm_bound(bundle.manifest.get("threshold") or {})
    return ProbationBounds(int(windows), float(timeout_s), float(bundle.threshold), fraction, basis)


def _derived_alarm_bound(threshold: dict[str, Any]) -> tuple[float, str]:
    params = threshold.get("params") if isinstance(threshold.get("params"), dict) else {}
    assert isinstance(params, dict)
    empirical = [float(params[k]) for k in ("heldout_exceedance", "q_risk") if _number(params.get(k))]
    if empirical:
        expected = max(empirical)
        bound, basis = EMPIRICAL_FACTOR * expected, f"10 x expected exceedance {expected:.3g}"
    elif str(threshold.get("strategy", "")).startswith("mean+k") and _number(params.get("k")):
        k = float(params["k"])
        bound, basis = 1.0 / (1.0 + k * k), f"Cantelli bound for mean+{k:g}*std"
    else:
        bound, basis = EMPIRICAL_FACTOR * FALLBACK_EXPECTED, "no training statistics: 10 x 1 %"
    return min(ALARM_CEILING, max(ALARM_FLOOR, bound)), basis


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class ProbationMonitor:
    """Collects the raw scores of the probation and gives the verdict."""

    def __init__(self, bounds: ProbationBounds, clock: Any = time.monotonic) -> None:
        self.bounds = bounds
        self._clock = clock
        self.started = clock()
        self.scores: list[float] = []
        self.alarms = 0
        self.failure: str | None = None

    def add(self, score: float) -> None:
        if self.failure is not None or len(self.scores) >= self.bounds.windows:
            return
        if not math.isfinite(score):
            self.failure = f"window {len(self.scores) + 1} scored {score} (not finite)"
            return
        self.scores.append(float(score))
        self.alarms += score > self.bounds.threshold

    def scoring_failed(self, exc: BaseException) -> None:
        if self.failure is None:
            self.failure = f"scoring raised {type(exc).__name__}: {exc}"[:300]

    def verdict(self) -> tuple[bool, str | None]:
        """``(done, failure)``: (False, None) while it runs; (True, None) = passed; (True, reason) = failed."""
        b = self.bounds
        if self.failure is not None:
            return True, self.failure
        allowed = b.max_alarm_fraction * b.windows
        if self.alarms > allowed:
            return True, (f"alarm rate: {self.alarms} of {len(self.scores)} windows above the threshold "
                          f"{b.threshold:.6g}, more than {b.max_alarm_fraction:.1%} of {b.windows} allows "
                          f"({b.basis})")
        if len(self.scores) >= b.windows:
            return True, self._distribution_failure()
        if self._clock() - self.started > b.timeout_s:
            return True, f"only {len(self.scores)} of {b.windows} windows scored in {b.timeout_s:g} s"
        return False, None

    def _distribution_failure(self) -> str | None:
        scores = np.asarray(self.scores, dtype=np.float64)
        median = float(np.median(scores))
        if float(np.ptp(scores)) == 0.0:  # exact: a constant model output repeats the same float
            return f"scores do not vary (all {median:.6g}): the model ignores its input"
        if median > self.bounds.threshold:
            return f"score distribution: median {median:.6g} above the threshold {self.bounds.threshold:.6g}"
        return None

    def summary(self) -> dict[str, Any]:
        scores = np.asarray(self.scores, dtype=np.float64)
        out: dict[str, Any] = {"windows": len(self.scores), "alarms": self.alarms}
        if len(scores):
            out["median_score"] = float(np.median(scores))
            out["alarm_fraction"] = round(self.alarms / len(scores), 6)
        return out


class ObservedScorer:
    """A scorer that shows every window score to a probation monitor (and its exceptions)."""

    def __init__(self, scorer: Any, monitor: ProbationMonitor | None = None) -> None:
        self.inner = scorer
        self.bundle = getattr(scorer, "bundle", None)
        self.monitor = monitor  # None once the probation is over: then it only forwards
        if getattr(scorer, "score_many", None) is not None:
            self.score_many = self._score_many

    def score(self, window: np.ndarray) -> Any:
        try:
            result = self.inner.score(window)
        except Exception as exc:
            if self.monitor is not None:
                self.monitor.scoring_failed(exc)
            raise
        if self.monitor is not None:
            self.monitor.add(float(result.score))
        return result

    def _score_many(self, windows: np.ndarray) -> Any:
        try:
            results = self.inner.score_many(windows)
        except Exception as exc:
            if self.monitor is not None:
                self.monitor.scoring_failed(exc)
            raise
        if self.monitor is not None:
            for result in results:
                self.monitor.add(float(result.score))
        return results
