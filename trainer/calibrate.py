"""False-alarm budget: the static threshold for a target rate of false events.

``--false-alarms 1/day`` is turned into a per-window risk ``q``: with the
sample rate known, the device scores ``rate_hz / hop`` windows per second, so
``q = budget per second * hop / rate_hz``. Without a sample rate the budget has
to be given per window (``0.001/window`` or ``1/1000windows``); a budget in time
then falls back to ``DEFAULT_WINDOW_RISK`` and says so.

The threshold is the score a held-out normal window exceeds with probability
``q``, from a peaks-over-threshold fit of the held-out scores
(:func:`edge_agent.detection.evt.pot_threshold`). Counting every window above
the threshold as a false event is conservative: consecutive windows overlap and
an alert policy merges them, so the published false events are at most this.

Default ``auto``: the stricter of 1 per day (the order of what an operator
accepts from one asset before alarms are ignored) and ``DEFAULT_WINDOW_RISK =
1e-3`` per window (close to the 1.35e-3 that mean + 3 std gives for Gaussian
scores, the rule it replaces, but computed from the real, usually heavier,
tail). The per-window cap matters for slow data: at one row per hour and hop 4
there are only 6 windows a day, and 1/day would allow one window in six.
Measured (benchmarks/notes/skill.md): on the ECG chfdb_chf01_275 and TEK16
(no sample rate, so 1e-3) the calibrated threshold gave 0 false runs of
windows on the test part against 2 each for mean + 3 std, with the labeled
event still found; on NAB machine/ambient temperature at 1/day (1/72 and 1/6
per window) it sat at or below mean + 3 std and neither threshold held (55%
and 10-15% of normal test windows above: the test part drifts away from the
short held-out tail), which is what the cap is for.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from edge_agent.detection.evt import pot_threshold
from edge_agent.errors import VigilInputError

DEFAULT_FALSE_ALARMS = "auto"
DEFAULT_WINDOW_RISK = 1e-3
EXTRAPOLATION_WARN = 100.0  # q * n below 1/100: the tail is extrapolated 100x past the held-out data
#: ``auto`` never asks the tail fit for a quantile more than this many times rarer than one held-out
#: window: the GPD quantile far past the data is mostly the fit's shape estimate, and on the demo
#: (250 Hz, hop 4: 1/day = 1.9e-7 per window from 585 held-out windows, 9000x past them) it put the
#: threshold 19x above every normal score and hid a real fault. The alert policy (k of n windows)
#: turns the per-window risk into a much lower rate of false *events*.
AUTO_MAX_EXTRAPOLATION = 10.0
SECONDS = {"s": 1.0, "sec": 1.0, "second": 1.0, "min": 60.0, "minute": 60.0, "h": 3600.0, "hr": 3600.0,
           "hour": 3600.0, "d": 86400.0, "day": 86400.0, "w": 604800.0, "week": 604800.0}
_BUDGET = re.compile(r"([0-9]*\.?[0-9]+(?:e-?[0-9]+)?)\s*/\s*([0-9]*\.?[0-9]*(?:e[0-9]+)?)\s*([a-z]+?)s?")


@dataclass(frozen=True)
class FalseAlarmBudget:
    """``count`` false events per ``per`` units (seconds, or windows when ``per_window``)."""

    text: str
    count: float
    per: float
    per_window: bool
    auto: bool = False

    def q_risk(self, rate_hz: float | None, hop: int) -> tuple[float, str | None]:
        """Per-window risk, and a note when a time budget had no sample rate to convert with."""
        if self.per_window:
            return self.count / self.per, None
        if self.auto:
            in_time = self.count / self.per / (rate_hz / hop) if rate_hz and rate_hz > 0 else 1.0
            return min(in_time, DEFAULT_WINDOW_RISK), None
        if not rate_hz or rate_hz <= 0:
            return DEFAULT_WINDOW_RISK, (f"--false-alarms {self.text} needs the sample rate (a timestamp column); "
                                         f"none known, so using {DEFAULT_WINDOW_RISK:g} per window")
        windows_per_second = rate_hz / hop
        return self.count / self.per / windows_per_second, None


def parse_false_alarms(text: str) -> FalseAlarmBudget:
    """``auto``, ``1/day``, ``3/week``, ``0.5/h``, ``0.001/window``, ``1/1000windows``; else a one-line error."""
    raw = (text or "").strip().lower().replace(" ", "")
    if raw == "auto":
        return FalseAlarmBudget("auto", 1.0, SECONDS["day"], False, auto=True)
    match = _BUDGET.fullmatch(raw)
    if match:
        count = float(match.group(1))
        multiple = float(match.group(2)) if match.group(2) else 1.0
        unit = match.group(3)
        if unit == "window" and count > 0 and multiple > 0 and count / multiple < 1:
            return FalseAlarmBudget(text, count, multiple, True)
        if unit in SECONDS and count > 0 and multiple > 0:
            return FalseAlarmBudget(text, count, multiple * SECONDS[unit], False)
    raise VigilInputError(f"--false-alarms must be auto or a rate like 1/day, 2/week, 0.5/h or 0.001/window "
                          f"(below 1 per window), got {text!r}", key="false-alarms")


def calibrate_threshold(scores: np.ndarray, budget: FalseAlarmBudget, rate_hz: float | None,
                        hop: int) -> tuple[float, dict[str, Any], list[str]]:
    """(threshold, run.json params, notes for the user) for ``budget`` on held-out normal scores."""
    q, note = budget.q_risk(rate_hz, hop)
    notes = [note] if note else []
    s = np.asarray(scores, dtype=np.float64)
    s = s[np.isfinite(s)]
    if s.size == 0:
        raise VigilInputError("no held-out window scores to set a threshold from "
                              "(use more training rows or a larger --validation-fraction)", key="threshold")
    if not 0 < q < 1:
        raise VigilInputError(f"--false-alarms {budget.text} is {q:g} per window; it must be below 1",
                              key="false-alarms")
    floor_q = 1.0 / (AUTO_MAX_EXTRAPOLATION * s.size)
    if budget.auto and q < floor_q:
        notes.append(f"false-alarm budget auto: {q:.3g} per window would extrapolate the held-out tail "
                     f"{1 / (q * s.size):.0f}x; using {floor_q:.3g} per window (10x past the {s.size} held-out "
                     f"windows; the alert policy merges windows into far fewer events)")
        q = floor_q
    value, fit = pot_threshold(s, q)
    params: dict[str, Any] = {"false_alarms": budget.text, "q_risk": q, "pot": fit,
                              "heldout_exceedance": float(np.mean(s > value)), "from": "held-out normal windows"}
    if rate_hz and rate_hz > 0:
        per_day = 86400.0 * rate_hz / hop
        params["windows_per_day"] = per_day
        params["expected_false_alarms_per_day"] = q * per_day
    else:
        params["expected_false_alarms_per_window"] = q
    if q * s.size < 1.0 / EXTRAPOLATION_WARN:
        notes.append(f"the budget ({q:.2g} per window) reaches {1 / (q * s.size):.0f}x beyond the {s.size} "
                     f"held-out windows: the threshold is an extrapolation of their tail; more training rows "
                     f"make it firmer")
    return value, params, notes


def expected_rate_text(params: dict[str, Any]) -> str:
    """``"expected 1 false alarm per day"`` style summary of calibrated params."""
    if "expected_false_alarms_per_day" in params:
        return f"target {params['expected_false_alarms_per_day']:.3g} false windows per day"
    return f"target {params.get('expected_false_alarms_per_window', float('nan')):.3g} false windows per window"


def false_alarm_info(params: dict[str, Any]) -> dict[str, Any] | None:
    """``detection.false_alarm`` (target, unit, expected, method) from calibrated params; None if not calibrated."""
    if "q_risk" not in params:
        return None
    method = str(params.get("pot", {}).get("method", "POT"))
    if "expected_false_alarms_per_day" in params:
        per_day = float(params["expected_false_alarms_per_day"])
        return {"target": per_day, "unit": "day", "expected": per_day, "method": method}
    q = float(params["q_risk"])
    return {"target": q, "unit": "window", "expected": q, "method": method}
