"""Alert payload: the JSON object a subscriber receives (and events.jsonl holds).

Shipped as a JSON Schema in ``edge_agent/schemas/alert.schema.json``; keep the
two in step (a test validates payloads against the schema). Times are ISO-8601
UTC strings because subscribers are usually dashboards and databases, and
sample indices are kept next to them for exact offline comparison.

Two kinds share the topic, the spool and the open/close lifecycle:
``kind: "anomaly"`` (the model's events; a payload without ``kind`` is one, as
older agents sent) and ``kind: "sensor_fault"`` (a stuck, clipped, out-of-range
or dropping sensor, with ``fault`` and ``feature``). A close may say why it
closed (``close_reason``); only ``normal`` means the condition cleared.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from edge_agent.alerts import AlertEvent, EventPhase

if TYPE_CHECKING:
    from edge_agent.detection.fault_events import SensorFaultEvent

ALERT_SCHEMA = "vigil.alert/1"
KIND_ANOMALY = "anomaly"
KIND_SENSOR_FAULT = "sensor_fault"
CLOSE_REASONS = ("normal", "agent_stopped", "agent_restarted", "end_of_stream", "model_changed")


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
    """Build the alert JSON object for one open or close of an anomaly event."""
    payload: dict[str, Any] = {
        "schema": ALERT_SCHEMA,
        "kind": KIND_ANOMALY,
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
    _add_close_reason(payload, event.phase, getattr(event, "close_reason", None))
    return payload


def sensor_fault_payload(event: SensorFaultEvent, *, device_id: str, model_id: str) -> dict[str, Any]:
    """Build the alert JSON object for one open or close of a sensor fault.

    ``feature`` is None for a fault of the whole sample (a dropout).
    """
    payload: dict[str, Any] = {
        "schema": ALERT_SCHEMA,
        "kind": KIND_SENSOR_FAULT,
        "event_id": event.event_id,
        "phase": event.phase.value,
        "device_id": device_id,
        "model_id": model_id,
        "fault": event.fault.value,
        "feature": event.feature,
        "start": iso_time(event.start_time),
        "end": iso_time(event.end_time),
        "start_sample": int(event.start_row),
        "end_sample": int(event.end_row),
        "sample_count": int(event.sample_count),
        "value": float(event.value),
        "limit": float(event.limit),
    }
    _add_close_reason(payload, event.phase, event.close_reason)
    return payload


def _add_close_reason(payload: dict[str, Any], phase: EventPhase, reason: object) -> None:
    """``close_reason`` on a close only (an Enum's value or a string, one of ``CLOSE_REASONS``)."""
    if phase is EventPhase.CLOSE and reason is not None:
        payload["close_reason"] = str(getattr(reason, "value", reason))
