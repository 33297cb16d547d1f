"""Alert payloads of both kinds against alert.schema.json (jsonschema and the agent's own checker)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from jsonschema import Draft202012Validator

from edge_agent import alerts
from edge_agent.alerts import AlertEvent, EventPhase
from edge_agent.detection import SensorHealthMonitor, SensorHealthSettings, measure_feature_stats
from edge_agent.detection.fault_events import SensorFault, SensorFaultEvent
from edge_agent.mqtt.alert_check import first_problem
from edge_agent.payload import CLOSE_REASONS, alert_payload, sensor_fault_payload

SCHEMA = json.loads((Path(__file__).resolve().parents[1] / "edge_agent/schemas/alert.schema.json").read_text())
VALIDATOR = Draft202012Validator(SCHEMA)


def valid(payload: dict[str, Any]) -> bool:
    """Both checkers must agree: subscribers use jsonschema, ``vigil alerts`` the built-in one."""
    by_jsonschema = VALIDATOR.is_valid(payload)
    assert by_jsonschema == (first_problem(payload, SCHEMA) == ""), (payload, first_problem(payload, SCHEMA))
    return by_jsonschema


def anomaly(phase: EventPhase = EventPhase.OPEN) -> AlertEvent:
    return AlertEvent(event_id="ab" * 16, phase=phase, start_row=10, end_row=20, start_time=1_790_000_000.0,
                      end_time=1_790_000_001.0, peak_score=2.0, mean_score=1.5, threshold=1.0, window_count=3,
                      feature_errors=np.array([0.7, 0.2, 0.1]))


def fault(phase: EventPhase = EventPhase.OPEN, kind: SensorFault = SensorFault.FLATLINE,
          feature: str | None = "ay", reason: str | None = None) -> SensorFaultEvent:
    return SensorFaultEvent("cd" * 16, phase, kind, feature, 100, 227, 1_790_000_000.0, None, 128, 0.0, 0.01,
                            reason)


def anomaly_payload(event: AlertEvent) -> dict[str, Any]:
    return alert_payload(event, device_id="dev1", model_id="m-1", feature_names=["ax", "ay", "az"])


def test_anomaly_payload_says_its_kind_and_stays_valid() -> None:
    payload = anomaly_payload(anomaly())
    assert payload["kind"] == "anomaly" and "close_reason" not in payload
    assert valid(payload)
    older = {k: v for k, v in payload.items() if k != "kind"}  # what agents sent before kinds existed
    assert valid(older)


def test_close_reason_is_on_closes_only() -> None:
    closed = anomaly(EventPhase.CLOSE)
    closed.close_reason = alerts.CloseReason.AGENT_STOPPED if hasattr(alerts, "CloseReason") else "agent_stopped"  # type: ignore[assignment]
    payload = anomaly_payload(closed)
    assert payload["close_reason"] == "agent_stopped" and valid(payload)
    opened = anomaly_payload(anomaly())
    assert not valid({**opened, "close_reason": "normal"})
    assert not valid({**payload, "close_reason": "tired"})


@pytest.mark.parametrize("kind", list(SensorFault))
def test_sensor_fault_payloads_validate_for_every_fault(kind: SensorFault) -> None:
    feature = None if kind is SensorFault.DROPOUT else "ay"
    for phase, reason in ((EventPhase.OPEN, None), (EventPhase.CLOSE, "normal"), (EventPhase.CLOSE, "end_of_stream")):
        payload = sensor_fault_payload(fault(phase, kind, feature, reason), device_id="dev1", model_id="m-1")
        assert payload["kind"] == "sensor_fault" and payload["fault"] == kind.value
        assert payload["feature"] == feature and payload["end"] is None
        assert ("close_reason" in payload) == (reason is not None)
        assert valid(payload)


def test_the_schema_keeps_the_kinds_apart() -> None:
    sensor = sensor_fault_payload(fault(), device_id="dev1", model_id="m-1")
    assert not valid({k: v for k, v in sensor.items() if k != "fault"})
    assert not valid({**sensor, "fault": "melted"})
    assert not valid({k: v for k, v in sensor.items() if k != "kind"})  # without kind it is an anomaly
    assert not valid({**sensor, "peak_score": 1.0})
    model = anomaly_payload(anomaly())
    assert not valid({**model, "fault": "flatline"})
    assert not valid({**model, "kind": "sensor_fault"})
    assert not valid({k: v for k, v in model.items() if k != "top_features"})


def test_every_close_reason_of_the_detector_is_in_the_schema() -> None:
    enum = SCHEMA["properties"]["close_reason"]["enum"]
    assert list(CLOSE_REASONS) == enum
    reasons = getattr(alerts, "CloseReason", None)
    if reasons is not None:
        assert {r.value for r in reasons} <= set(enum)


def test_payloads_of_a_real_monitor_run_validate() -> None:
    rng = np.random.default_rng(0)
    settings = SensorHealthSettings(check_samples=32, hold_samples=64)
    monitor = SensorHealthMonitor(settings, measure_feature_stats(rng.normal(0, 1, (2000, 2)), ["a", "b"], settings))
    values = rng.normal(0, 1, (1000, 2))
    values[300:500, 0] = 0.25
    events = monitor.update(values, 1_790_000_000.0 + np.arange(1000) / 100) + monitor.close_all("end_of_stream")
    payloads = [sensor_fault_payload(e, device_id="dev1", model_id="m-1") for e in events]
    assert [(p["phase"], p["fault"], p["feature"]) for p in payloads] == [("open", "flatline", "a"),
                                                                         ("close", "flatline", "a")]
    assert payloads[0]["event_id"] == payloads[1]["event_id"] and all(valid(p) for p in payloads)
    assert payloads[0]["start"].startswith("2026-") and payloads[1]["close_reason"] == "normal"
