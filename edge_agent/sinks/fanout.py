"""Several sinks behind one: alerts go to all of them; a failing sink does not stop the others.

:func:`build_sink` turns the config's ``[mqtt]`` / ``[sinks]`` into the agent's
fan-out: MQTT (behind its SQLite spool) when a broker is set, plus the JSONL
file and stdout sinks.
"""

from __future__ import annotations

import logging
from typing import Any

from edge_agent.config import AgentConfig, mqtt_settings
from edge_agent.sinks.base import AlertSink

log = logging.getLogger("vigil.agent")


class FanoutSink:
    """Several sinks behind one: alerts go to all; a failing sink does not stop the others."""

    def __init__(self, sinks: list[tuple[str, AlertSink, bool]]) -> None:
        self.sinks = sinks  # (name, sink, takes_health)
        self.errors = 0

    def start(self) -> None:
        for _, sink, _ in self.sinks:
            sink.start()

    def publish_alert(self, payload: dict[str, Any]) -> None:
        for name, sink, _ in self.sinks:
            self._guard(name, sink.publish_alert, payload)

    def publish_health(self, payload: dict[str, Any]) -> None:
        for name, sink, takes_health in self.sinks:
            if takes_health:
                self._guard(name, sink.publish_health, payload)

    def stats(self) -> dict[str, Any]:
        merged: dict[str, Any] = {"sink_errors": self.errors}
        for name, sink, _ in self.sinks:
            for key, value in sink.stats().items():
                # The broker's counters are the ones health reports unprefixed.
                merged[key if name == "mqtt" else f"{name}_{key}"] = value
        return merged

    def stop(self) -> None:
        for name, sink, _ in self.sinks:
            try:
                sink.stop()
            except Exception as exc:  # one sink failing to stop must not keep the others up
                log.error("sink %s: stop failed: %s", name, exc)

    def _guard(self, name: str, method: Any, payload: dict[str, Any]) -> None:
        try:
            method(payload)
        except Exception as exc:  # a full disk or a closed pipe must not kill the loop
            self.errors += 1
            log.error("sink %s: %s", name, exc)


def build_sink(config: AgentConfig) -> FanoutSink:
    """MQTT (with its spool) when a host is set, plus the JSONL file / stdout sinks."""
    sinks: list[tuple[str, AlertSink, bool]] = []
    settings = mqtt_settings(config)
    with_health = bool(config.sinks.health_jsonl)
    if settings is not None:
        from edge_agent.mqtt.sink import MqttSink
        from edge_agent.spool import AlertSpool

        spool_cfg = config.spool
        # No mkdir here: AlertSpool creates its directory, and an unwritable one means a
        # memory-only spool (loud in logs and health), not an agent that refuses to start.
        spool = AlertSpool(spool_cfg.path, spool_cfg.max_messages, spool_cfg.max_age_s)
        sinks.append(("mqtt", MqttSink(settings, config.device_id, spool), True))
    jsonl = config.sinks.jsonl
    if jsonl is not None:
        from edge_agent.sinks.jsonl import JsonlSink

        sinks.append(("jsonl", JsonlSink(jsonl, write_health=with_health), True))
    if config.sinks.stdout or not sinks:
        from edge_agent.sinks.stdout import StdoutSink

        sinks.append(("stdout", StdoutSink(as_json=True, show_health=with_health), True))
    return FanoutSink(sinks)


__all__ = ["FanoutSink", "build_sink"]
