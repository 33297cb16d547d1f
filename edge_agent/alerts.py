"""From window decisions to alert events: k-of-n to open, m normal to close.

A window is anomalous when its (smoothed) score exceeds the threshold in force
(the bundle's static threshold, or the dynamic threshold above it, times
``sensitivity``); the caller decides and passes the verdict in. An event opens
when ``k`` of the last ``n`` windows are anomalous and closes after ``m``
consecutive normal windows; after a close, no new event opens for ``cooldown``
windows. The streaming pipeline (:mod:`edge_agent.pipeline`) runs this class
for the agent, ``vigil score`` and ``vigil evaluate`` alike.
"""

from __future__ import annotations

import uuid
from collections import deque
from dataclasses import dataclass, field
from enum import Enum

import numpy as np


class EventPhase(str, Enum):
    OPEN = "open"
    CLOSE = "close"


class CloseReason(str, Enum):
    """Why an event closed: a cleared fault is ``normal``; the others are not clearances."""

    NORMAL = "normal"  # m consecutive normal windows
    AGENT_STOPPED = "agent_stopped"  # SIGTERM / clean stop while the event was open
    AGENT_RESTARTED = "agent_restarted"  # closed by the next start after a crash or kill -9
    END_OF_STREAM = "end_of_stream"  # a replayed file (or stdin) ended
    MODEL_CHANGED = "model_changed"  # a new bundle took over


@dataclass(frozen=True)
class AlertPolicy:
    sensitivity: float = 1.0
    k: int = 1
    n: int = 1
    m: int = 1
    cooldown: int = 0

    def __post_init__(self) -> None:
        if not (1 <= self.k <= self.n):
            raise ValueError(f"need 1 <= k <= n, got k={self.k}, n={self.n}")
        if self.m < 1 or self.cooldown < 0 or self.sensitivity <= 0:
            raise ValueError("need m >= 1, cooldown >= 0 and sensitivity > 0")


@dataclass
class AlertEvent:
    """One anomaly event; emitted once when it opens and once when it closes."""

    event_id: str
    phase: EventPhase
    start_row: int
    end_row: int
    start_time: float | None
    end_time: float | None
    peak_score: float
    mean_score: float
    threshold: float
    window_count: int
    feature_errors: np.ndarray = field(repr=False)
    close_reason: CloseReason | None = None

    def top_features(self, names: list[str], top: int = 3) -> list[dict[str, float | str]]:
        """Features that contributed most, with their share of the error."""
        total = float(self.feature_errors.sum())
        shares = self.feature_errors / total if total > 0 else np.zeros_like(self.feature_errors)
        order = np.argsort(-shares)[:top]
        return [{"feature": names[i], "share": round(float(shares[i]), 4)} for i in order]


class EventDetector:
    """Streaming state machine; feed it one scored window at a time."""

    def __init__(self, threshold: float, policy: AlertPolicy | None = None) -> None:
        self.policy = policy or AlertPolicy()
        self.threshold = float(threshold)
        self.limit = self.threshold * self.policy.sensitivity
        self._recent: deque[bool] = deque(maxlen=self.policy.n)
        self._recent_anomalous = 0  # sum(self._recent), kept as the deque moves (k-of-n per window in O(1))
        self._event: AlertEvent | None = None
        self._normal_run = 0
        self._cooldown_left = 0
        self._sum = 0.0
        self._threshold_now = self.limit

    @property
    def open_event(self) -> AlertEvent | None:
        return self._event

    def is_anomalous(self, score: float) -> bool:
        return bool(score > self.limit)

    def update(
        self,
        row: int,
        time: float | None,
        score: float,
        feature_errors: np.ndarray,
        anomalous: bool | None = None,
        threshold: float | None = None,
        start_row: int | None = None,
        start_time: float | None = None,
    ) -> AlertEvent | None:
        """Account for one window ending at ``row``; return an event change or None.

        ``anomalous`` / ``threshold``: the verdict and the threshold in force
        when a dynamic threshold decides; by default the static ``limit``.
        ``start_row`` / ``start_time``: where an event opened by this window
        starts when that is before ``row`` (row-localized scores); default ``row``.
        """
        if anomalous is None:
            anomalous = self.is_anomalous(score)
        self._threshold_now = self.limit if threshold is None else float(threshold)
        recent = self._recent
        if len(recent) == self.policy.n:
            self._recent_anomalous -= recent[0]  # the verdict append() is about to drop
        recent.append(anomalous)
        self._recent_anomalous += anomalous
        if self._event is not None:
            return self._continue(row, time, score, feature_errors, anomalous)
        if self._cooldown_left > 0:
            self._cooldown_left -= 1
            return None
        if self._recent_anomalous >= self.policy.k and anomalous:
            return self._open(row, time, score, feature_errors, start_row, start_time)
        return None

    def _open(self, row: int, time: float | None, score: float, errors: np.ndarray,
              start_row: int | None = None, start_time: float | None = None) -> AlertEvent:
        self._event = AlertEvent(
            event_id=uuid.uuid4().hex,
            phase=EventPhase.OPEN,
            start_row=row if start_row is None else int(start_row),
            end_row=row,
            start_time=time if start_row is None else start_time,
            end_time=time,
            peak_score=float(score),
            mean_score=float(score),
            threshold=self._threshold_now,
            window_count=1,
            feature_errors=np.array(errors, dtype=np.float64),
        )
        self._sum = float(score)
        self._normal_run = 0
        return _snapshot(self._event)

    def _continue(
        self, row: int, time: float | None, score: float, errors: np.ndarray, anomalous: bool
    ) -> AlertEvent | None:
        ev = self._event
        assert ev is not None
        if anomalous:
            self._normal_run = 0
            ev.end_row, ev.end_time = row, time
            ev.window_count += 1
            self._sum += float(score)
            ev.mean_score = self._sum / ev.window_count
            if score > ev.peak_score:
                ev.peak_score = float(score)
            ev.feature_errors += np.asarray(errors, dtype=np.float64)
            return None
        self._normal_run += 1
        if self._normal_run < self.policy.m:
            return None
        return self.close(CloseReason.NORMAL)

    def close(self, reason: CloseReason = CloseReason.NORMAL) -> AlertEvent | None:
        """Close the open event (also used at end of stream / shutdown, with that reason)."""
        ev = self._event
        if ev is None:
            return None
        self._event = None
        self._normal_run = 0
        self._cooldown_left = self.policy.cooldown
        self._recent.clear()
        self._recent_anomalous = 0
        closed = _snapshot(ev)
        closed.phase = EventPhase.CLOSE
        closed.close_reason = reason
        return closed


def _snapshot(ev: AlertEvent) -> AlertEvent:
    return AlertEvent(**{**ev.__dict__, "feature_errors": ev.feature_errors.copy()})
