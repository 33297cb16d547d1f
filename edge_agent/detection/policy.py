"""Default detection settings derived from the window geometry and the sample rate.

Everything is expressed in *window lengths of signal*, the time scale the model
sees, and converted to counts of scored windows (one per ``hop`` samples); when
the sample rate is known the result also states those durations in seconds
(``AlertPolicySettings.hop_seconds``) and the dynamic threshold's buffer is
stored in seconds (``buffer_seconds``), so a device with another hop derives
the same time spans.

Rules (``L`` = one window length = ``window / hop`` scored windows):

- smoothing: EWMA with a span of ``SMOOTHING_WINDOW_LENGTHS * L`` windows,
  ``alpha = 2 / (span + 1)`` (the usual span-to-alpha rule), bounded below by
  ``ALPHA_MIN``; ``alpha = 1`` (no smoothing) when the span is one window.
- open: an anomaly shows in every window that covers it, about ``L`` windows
  in a row, so ``n`` spans ``OPEN_WINDOW_LENGTHS * L`` windows and ``k`` is
  ``OPEN_FRACTION`` of them.
- close: ``m`` normal windows spanning ``CLOSE_WINDOW_LENGTHS * L`` (and at
  least ``MIN_CLOSE_SECONDS`` when the rate is known), so an event does not
  close and reopen while the windows still overlap its anomalous rows.
- cooldown: ``COOLDOWN_WINDOW_LENGTHS * L`` windows.
- every count is bounded (``*_MAX``) so a hop of 1 sample cannot ask for
  thousands of windows.

The constants are first guesses from the issue's replay (m = 32 alone took
event-F1 from 0.17 to 0.45); they are meant to be tuned on real data.
"""

from __future__ import annotations

import math

from edge_agent.detection.settings import (
    AlertPolicySettings,
    DetectionSettings,
    DynamicThresholdSettings,
    ScoreSettings,
    SensorHealthSettings,
)

SMOOTHING_WINDOW_LENGTHS = 0.5
ALPHA_MIN = 0.02
OPEN_WINDOW_LENGTHS = 1.0
OPEN_FRACTION = 0.5
CLOSE_WINDOW_LENGTHS = 2.0
MIN_CLOSE_SECONDS = 1.0
COOLDOWN_WINDOW_LENGTHS = 1.0
N_MAX = 64
M_MAX = 512
COOLDOWN_MAX = 512

#: Dynamic threshold: buffer of recent smoothed errors (Telemanom used about 2000 values).
BUFFER_WINDOWS = 2000
#: Warm-up: the dynamic threshold applies once this share of the buffer is filled.
WARMUP_FRACTION = 0.25
REFIT_EVERY = 64

#: Sensor health: checks judge chunks of this many window lengths of samples ...
CHECK_WINDOW_LENGTHS = 1.0
#: ... and a fault closes after this many window lengths without it (and at least MIN_HOLD_SECONDS:
#: intermittent glitches a few hundred samples apart are one fault, not a burst of them).
HOLD_WINDOW_LENGTHS = 2.0
MIN_HOLD_SECONDS = 2.0
MIN_CHECK_SAMPLES = 16


def _check_geometry(window: int, hop: int, rate_hz: float | None) -> tuple[int, int]:
    window, hop = int(window), int(hop)
    if window < 1 or hop < 1:
        raise ValueError(f"need window >= 1 and hop >= 1, got window={window}, hop={hop}")
    if rate_hz is not None and not (math.isfinite(rate_hz) and rate_hz > 0):
        raise ValueError(f"rate_hz must be a positive number or None, got {rate_hz}")
    return window, hop


def _windows(lengths: float, window: int, hop: int, lo: int, hi: int) -> int:
    """``lengths`` window lengths of signal as a count of scored windows, within ``[lo, hi]``."""
    return min(max(round(lengths * window / hop), lo), hi)


def recommended_policy(window: int, hop: int, rate_hz: float | None = None) -> AlertPolicySettings:
    """Smoothing alpha, k, n, m and cooldown for this geometry (rules in the module docstring)."""
    window, hop = _check_geometry(window, hop, rate_hz)
    span = SMOOTHING_WINDOW_LENGTHS * window / hop
    alpha = None if span <= 1.0 else max(2.0 / (span + 1.0), ALPHA_MIN)
    n = _windows(OPEN_WINDOW_LENGTHS, window, hop, 1, N_MAX)
    k = max(1, math.ceil(OPEN_FRACTION * n))
    m = _windows(CLOSE_WINDOW_LENGTHS, window, hop, 1, M_MAX)
    hop_seconds = None if rate_hz is None else hop / float(rate_hz)
    if hop_seconds is not None:
        m = min(max(m, math.ceil(MIN_CLOSE_SECONDS / hop_seconds)), M_MAX)
    cooldown = _windows(COOLDOWN_WINDOW_LENGTHS, window, hop, 0, COOLDOWN_MAX)
    return AlertPolicySettings(k=k, n=n, m=m, cooldown=cooldown, smoothing=alpha, hop_seconds=hop_seconds)


def recommended_dynamic_threshold(window: int, hop: int, rate_hz: float | None = None) -> DynamicThresholdSettings:
    """Buffer of ``BUFFER_WINDOWS`` windows (stated in seconds when the rate is known)."""
    window, hop = _check_geometry(window, hop, rate_hz)
    seconds = None if rate_hz is None else BUFFER_WINDOWS * hop / float(rate_hz)
    return DynamicThresholdSettings(buffer_windows=BUFFER_WINDOWS, buffer_seconds=seconds,
                                    min_windows=max(2, round(WARMUP_FRACTION * BUFFER_WINDOWS)),
                                    refit_every=REFIT_EVERY)


def recommended_sensor_health(window: int, hop: int, rate_hz: float | None = None) -> SensorHealthSettings:
    """Checks on chunks of one window length of samples; a fault closes after two (and >= 2 s) without it.

    A dropout is a gap of at least one hop: a lost sample restarts the window
    buffer, and losing a hop's worth loses a scored window.
    """
    window, hop = _check_geometry(window, hop, rate_hz)
    hold = max(1, round(HOLD_WINDOW_LENGTHS * window))
    if rate_hz is not None:
        hold = max(hold, math.ceil(MIN_HOLD_SECONDS * rate_hz))
    return SensorHealthSettings(check_samples=max(MIN_CHECK_SAMPLES, round(CHECK_WINDOW_LENGTHS * window)),
                                hold_samples=hold, dropout_min_missing=hop)


def recommended_score(window: int, hop: int) -> ScoreSettings:
    """Each window's mean error, decided per window (``[alerts] score = "row"`` gives per-row scores).

    Chosen by the quality benchmark's published-event F1 on 23 real series (benchmarks/notes/quality.md),
    over two sets of trained models: window mean 0.507 and 0.548, per-row 0.528 and 0.472 (pooled, the
    window mean finds 39 of 78 labeled events with 31 false events, per-row 36 with 30), and the window
    mean costs half the per-window logic (BENCHMARKS 4c).
    """
    return ScoreSettings(mode="window")


def default_detection(window: int, hop: int, rate_hz: float | None = None) -> DetectionSettings:
    """Every default derived from the window geometry and the sample rate (the rules above)."""
    return DetectionSettings(policy=recommended_policy(window, hop, rate_hz),
                             dynamic_threshold=recommended_dynamic_threshold(window, hop, rate_hz),
                             sensor_health=recommended_sensor_health(window, hop, rate_hz),
                             score=recommended_score(window, hop))
