"""Health counters of the running agent and the periodic ``health`` payload.

Everything here is cheap enough for the hot path: counters are plain ints and
scoring latencies go into a fixed numpy ring (no per-window allocation), from
which p50/p99 are taken only when a health message is built.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from edge_agent.payload import iso_time

HEALTH_SCHEMA = "vigil.health/1"
LATENCY_RING = 1024  # the rolling window for p50/p99: the last this many scored windows


class LatencyRing:
    """Last ``size`` latencies in seconds; percentiles over what is there."""

    def __init__(self, size: int = LATENCY_RING) -> None:
        self._values = np.zeros(size, dtype=np.float64)
        self._next = 0
        self._count = 0

    def add(self, seconds: float) -> None:
        self._values[self._next] = seconds
        self._next = (self._next + 1) % self._values.size
        self._count = min(self._count + 1, self._values.size)

    def percentiles_ms(self) -> dict[str, float | None]:
        if self._count == 0:
            return {"p50": None, "p99": None}
        values = np.sort(self._values[: self._count])
        p50, p99 = (_linear_percentile(values, q) * 1000.0 for q in (50.0, 99.0))
        return {"p50": round(p50, 3), "p99": round(p99, 3)}


def _linear_percentile(sorted_values: np.ndarray, q: float) -> float:
    """numpy's default (linear) percentile of sorted values; np.percentile would import numpy.ma (+1.3 MB RSS)."""
    pos = (len(sorted_values) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return float(sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo))


class HealthTracker:
    """What the agent counts around the pipeline; :meth:`payload` renders one health message."""

    def __init__(self, device_id: str, model_id: str) -> None:
        self.device_id = device_id
        self.model_id = model_id
        self.started = time.monotonic()
        self.alerts_published = 0
        self.restarted_with_open_events = 0  # events a killed previous run left open (closed at start)
        self._rate_mark = (self.started, 0)

    def samples_per_s(self, samples: int, now: float) -> float:
        """Rate achieved since the previous health message (or since start)."""
        mark_time, mark_samples = self._rate_mark
        elapsed = now - mark_time
        rate = (samples - mark_samples) / elapsed if elapsed > 0 else 0.0
        self._rate_mark = (now, samples)
        return round(rate, 2)

    def payload(
        self,
        *,
        source: dict[str, int],
        pipeline: dict[str, Any],
        sink: dict[str, int],
        event_open: bool,
        now: float | None = None,
        extra: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """One health message; ``extra`` (the add-ons' fields: captures, addons, last_score) is merged in."""
        now = time.monotonic() if now is None else now
        quality: dict[str, int] = pipeline.get("quality", {})
        samples = int(pipeline.get("samples", 0))
        out: dict[str, Any] = {
            "schema": HEALTH_SCHEMA,
            "device_id": self.device_id,
            "model_id": self.model_id,
            "time": iso_time(time.time()),
            "uptime_s": round(now - self.started, 3),
            "samples_per_s": self.samples_per_s(samples, now),
            "samples": samples,
            "windows_scored": int(pipeline.get("windows_scored", 0)),
            "window_resets": int(quality.get("window_resets", 0)),
            "scoring_latency_ms": pipeline.get("scoring_latency_ms", {"p50": None, "p99": None}),
            "alerts_published": self.alerts_published,
            "events_opened": int(pipeline.get("events_opened", 0)),
            "event_open": event_open,
            "restarted_with_open_events": self.restarted_with_open_events,
            "spool_depth": int(sink.get("spool_depth", 0)),
            "spool_dropped": int(sink.get("spool_dropped", sink.get("dropped", 0))),
            # SampleQuality sees every sample, including the rows the source
            # already marked invalid, so its counters are the ones to report.
            "dropped_samples": int(quality.get("dropped_samples", 0)),
            "bad_samples": int(quality.get("bad_samples", 0)),
            "gaps": int(quality.get("gaps", 0)),
            "sensor_errors": int(source.get("read_errors", 0)),
            "threshold": pipeline.get("threshold", {}),
            "source": dict(source),
            "quality": dict(quality),
            "sink": dict(sink),
        }
        if "sensor_health" in pipeline:
            out["sensor_health"] = pipeline["sensor_health"]
        out.update(extra or {})
        return out
