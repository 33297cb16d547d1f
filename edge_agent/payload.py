"""Alert payload: the JSON object a subscriber receives (and events.jsonl holds).

Shipped as a JSON Schema in ``edge_agent/schemas/alert.schema.json``; keep the
two in step (a test validates payloads against the schema). Times are ISO-8601
UTC strings because subscribers are usually dashboards and databases, and
sample indices are kept next to them for exact offline comparison.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from edge_agent.alerts import AlertEvent

ALERT_SCHEMA = "vigil.alert/1"


def iso_time(epoch_seconds: float | None) -> str | None:
    if epoch_seconds is None:
        return None
    stamp = dt.datetime.fromtimestamp(float(epoch_seconds), tz=dt.timezone.utc)
    return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def alert_payload(
    event: AlertEvent,
    *,
    device_id: str,
    model_id: str,
    feature_names: list[str],
    top: int = 3,
) -> dict[str, Any]:
    """Build the alert JSON object for one open or close of an event."""
    return {
        "schema": ALERT_SCHEMA,
        "event_id": event.event_id,
        "phase": event.phase.value,
        "device_id": device_id,
        "model_id": model_id,
        "start": iso_time(event.start_time),
        "end": iso_time(event.end_time),
        "start_sample": int(event.start_row),
        "end_sample": int(event.end_row),
        "peak_score": float(event.peak_score),
        "mean_score": float(event.mean_score),
        "threshold": float(event.threshold),
        "window_count": int(event.window_count),
        "top_features": event.top_features(feature_names, top=min(top, len(feature_names))),
    }
