"""One rig per sink: the real sink plus a way to see what reached the other side.

The MQTT sink talks to a real mosquitto (tests/broker.py) with a real SQLite
spool; an observer client subscribes to the device's topics.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_agent.sinks.base import AlertSink
from edge_agent.sinks.jsonl import JsonlSink
from edge_agent.sinks.stdout import StdoutSink

Payload = dict[str, Any]


@dataclass
class SinkRig:
    name: str
    sink: AlertSink
    #: Alerts that reached the other side (file, stream, broker subscriber), in arrival order.
    delivered: Callable[[], list[Payload]]
    #: Alerts stored so that a crash right now would not lose them (the file, the spool + delivered).
    durable: Callable[[], list[Payload]]
    #: The sink's own count of alerts handed on, from its ``stats()``.
    alert_count: Callable[[dict[str, Any]], int]
    settle_s: float = 0.0  # how long delivery may take (a broker round trip); a bound, not a target
    cleanup: list[Callable[[], None]] = field(default_factory=list)

    def wait_delivered(self, n: int) -> list[Payload]:
        deadline = time.monotonic() + self.settle_s
        while len(self.delivered()) < n and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.delivered()


def _json_lines(text: str) -> list[Payload]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def jsonl_rig(tmp_path: Path) -> SinkRig:
    path = tmp_path / "out" / "alerts.jsonl"

    def lines() -> list[Payload]:  # read from disk through another handle
        return _json_lines(path.read_text()) if path.exists() else []

    return SinkRig("jsonl", JsonlSink(path), lines, lines, lambda s: int(s["alerts_written"]))


def stdout_rig(tmp_path: Path) -> SinkRig:
    stream = io.StringIO()

    def lines() -> list[Payload]:
        return _json_lines(stream.getvalue())

    return SinkRig("stdout", StdoutSink(stream, as_json=True), lines, lines, lambda s: int(s["alerts_written"]))


def mqtt_rig(tmp_path: Path, broker: Any) -> SinkRig:
    from edge_agent.mqtt.settings import MqttSettings
    from edge_agent.mqtt.sink import MqttSink
    from edge_agent.spool import AlertSpool
    from tests.test_mqtt_sink import Observer

    observer = Observer(broker.port, "vigil/dev1/#")
    spool = AlertSpool(tmp_path / "spool.db")
    settings = MqttSettings(host=broker.host, port=broker.port, reconnect_min_s=0.1, reconnect_max_s=0.5,
                            connect_timeout_s=5.0)
    sink = MqttSink(settings, "dev1", spool)

    def durable() -> list[Payload]:
        # The broker acks the publish (the spool deletes it) and forwards it to the observer
        # independently, so an acked alert may not have reached the observer yet. Read the spool
        # first, then wait until the observer holds every alert acked by then (delivery is in order).
        spooled = [m.payload_dict() for m in spool.pending(1000)]
        acked = int(sink.stats()["acked"])
        deadline = time.monotonic() + 10.0
        while len(observer.alerts()) < acked and time.monotonic() < deadline:
            time.sleep(0.01)
        return observer.alerts() + spooled

    rig = SinkRig("mqtt", sink, observer.alerts, durable, lambda s: int(s["acked"]), settle_s=15.0)
    rig.cleanup += [observer.close, spool.close]
    return rig


def fanout_rig(tmp_path: Path) -> SinkRig:
    """The agent's fan-out over a JSONL file and stdout."""
    from edge_agent.sinks.fanout import FanoutSink

    inner, out = jsonl_rig(tmp_path), stdout_rig(tmp_path)
    sink = FanoutSink([("jsonl", inner.sink, True), ("stdout", out.sink, True)])
    return SinkRig("fanout", sink, inner.delivered, inner.durable,
                   lambda s: min(int(s["jsonl_alerts_written"]), int(s["stdout_alerts_written"])))
