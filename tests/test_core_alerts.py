"""Event detector: k-of-n opening, m-normal closing, cooldown."""

from __future__ import annotations

import numpy as np
import pytest

from edge_agent.alerts import AlertPolicy, EventDetector, EventPhase


def run(detector: EventDetector, scores: list[float]) -> list[tuple[str, int, int]]:
    changes = []
    for row, s in enumerate(scores):
        ev = detector.update(row, float(row), s, np.array([s, 1.0]))
        if ev is not None:
            changes.append((ev.phase.value, ev.start_row, ev.end_row))
    return changes


def test_single_window_policy_opens_and_closes() -> None:
    det = EventDetector(threshold=1.0)
    assert run(det, [0, 2, 3, 0, 0]) == [("open", 1, 1), ("close", 1, 2)]


def test_k_of_n_needs_enough_recent_anomalies() -> None:
    det = EventDetector(1.0, AlertPolicy(k=2, n=3, m=2))
    # rows 1 and 3 anomalous: 2 of the last 3 at row 3 -> opens at row 3.
    changes = run(det, [0, 5, 0, 5, 0, 0, 0])
    assert changes == [("open", 3, 3), ("close", 3, 3)]


def test_event_statistics_and_sensitivity() -> None:
    det = EventDetector(2.0, AlertPolicy(sensitivity=0.5))  # limit = 1.0
    events = []
    for row, s in enumerate([0.5, 1.5, 3.0, 1.5, 0.2]):
        ev = det.update(row, None, s, np.array([s, 0.0]))
        if ev is not None:
            events.append(ev)
    opened, closed = events
    assert opened.phase is EventPhase.OPEN and closed.phase is EventPhase.CLOSE
    assert opened.event_id == closed.event_id
    assert closed.window_count == 3
    assert closed.peak_score == 3.0
    assert closed.mean_score == pytest.approx(2.0)
    assert closed.threshold == 1.0
    assert closed.top_features(["a", "b"])[0] == {"feature": "a", "share": 1.0}


def test_cooldown_suppresses_immediate_reopen() -> None:
    det = EventDetector(1.0, AlertPolicy(cooldown=2))
    changes = run(det, [5, 0, 5, 5, 5])
    # closes at row 1, rows 2-3 are cooldown, row 4 opens a new event
    assert changes == [("open", 0, 0), ("close", 0, 0), ("open", 4, 4)]


def test_explicit_close_at_shutdown() -> None:
    det = EventDetector(1.0)
    run(det, [5, 5])
    ev = det.close()
    assert ev is not None and ev.phase is EventPhase.CLOSE and ev.window_count == 2
    assert det.close() is None


def test_policy_validation() -> None:
    with pytest.raises(ValueError):
        AlertPolicy(k=3, n=2)
    with pytest.raises(ValueError):
        AlertPolicy(m=0)
