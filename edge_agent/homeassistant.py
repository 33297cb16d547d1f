"""Home Assistant MQTT discovery for one agent (opt-in, ``[homeassistant] enabled = true``).

Discovery configs follow Home Assistant's documented format: one retained
JSON object per entity on ``<discovery_prefix>/<component>/<node_id>/<object_id>/config``
with ``unique_id``, ``state_topic`` + ``value_template``, ``availability`` and
a ``device`` block that ties the entities to one device in HA's registry.

Entities (object ids): ``anomaly`` (binary_sensor, device class problem),
``sensor_fault`` (binary_sensor, problem), ``score`` (last smoothed window
score), ``threshold``, ``scoring_latency`` (p50, ms), ``spool_depth``.

State: every entity reads one small **retained** JSON object on
``<prefix>/state`` (built by :class:`HaState`, republished on every alert and
health message), so HA shows the right values right after its own restart
instead of "unknown" until the next alert. A value not known yet is JSON
``null``; its template renders ``None``, which HA's MQTT sensor takes as
"unknown" (home-assistant/core PR 117813), not as a bad number.
Availability is the agent's retained ``<prefix>/status`` topic (``online`` /
``offline``; the Last Will makes a crash ``offline`` too); ``online
degraded: ...`` still counts as available (the template takes the first word).

The configs are published (retained) on every connection of the agent and
again when HA announces itself on ``<discovery_prefix>/status`` = ``online``
(HA's birth message) and when the bundle changes (``sw_version``). Nothing is
removed when the section is turned off: an agent with ``enabled = false``
does not connect for HA at all. ``vigil homeassistant remove --config FILE``
publishes :meth:`Discovery.removal_messages` (empty retained payloads that
delete the entities and clear the retained state) for a device that should
leave Home Assistant.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from edge_agent import __version__
from edge_agent.mqtt import constants as C

STATE_TOPIC = "state"
HA_BIRTH_TOPIC = "status"  # under the discovery prefix; HA publishes "online" there when it starts
AVAILABILITY_TEMPLATE = "{{ 'online' if value.split(' ')[0] == 'online' else 'offline' }}"
MANUFACTURER = "vigil-edge"


@dataclass(frozen=True)
class Entity:
    component: str  # "binary_sensor" or "sensor"
    object_id: str
    name: str
    template: str
    extra: dict[str, Any] = field(default_factory=dict)


ENTITIES = (
    Entity("binary_sensor", "anomaly", "Anomaly", "{{ value_json.anomaly }}",
           {"device_class": "problem", "payload_on": "ON", "payload_off": "OFF"}),
    Entity("binary_sensor", "sensor_fault", "Sensor fault", "{{ value_json.sensor_fault }}",
           {"device_class": "problem", "payload_on": "ON", "payload_off": "OFF", "entity_category": "diagnostic"}),
    Entity("sensor", "score", "Anomaly score", "{{ value_json.score }}",
           {"state_class": "measurement", "suggested_display_precision": 4}),
    Entity("sensor", "threshold", "Threshold", "{{ value_json.threshold }}",
           {"state_class": "measurement", "suggested_display_precision": 4, "entity_category": "diagnostic"}),
    Entity("sensor", "scoring_latency", "Scoring latency", "{{ value_json.scoring_latency_ms }}",
           {"state_class": "measurement", "unit_of_measurement": "ms", "device_class": "duration",
            "entity_category": "diagnostic"}),
    Entity("sensor", "spool_depth", "Spooled alerts", "{{ value_json.spool_depth }}",
           {"state_class": "measurement", "entity_category": "diagnostic"}),
)


def node_id_for(device_id: str, node_id: str = "") -> str:
    """HA's node id: letters, digits, ``_`` and ``-`` only (``vigil_<device>`` unless configured)."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", node_id or f"vigil_{device_id}")


@dataclass(frozen=True)
class Discovery:
    """What the configs need: where the agent publishes and who it is."""

    discovery_prefix: str
    topic_prefix: str  # the agent's own prefix, e.g. vigil/<device_id>
    device_id: str
    node_id: str
    device_name: str
    model_id: str

    @property
    def state_topic(self) -> str:
        return f"{self.topic_prefix}/{STATE_TOPIC}"

    @property
    def birth_topic(self) -> str:
        return f"{self.discovery_prefix}/{HA_BIRTH_TOPIC}"

    def config_topic(self, entity: Entity) -> str:
        return f"{self.discovery_prefix}/{entity.component}/{self.node_id}/{entity.object_id}/config"

    def device(self) -> dict[str, Any]:
        return {"identifiers": [self.node_id], "name": self.device_name, "manufacturer": MANUFACTURER,
                "model": f"vigil-edge agent {__version__}", "model_id": self.model_id, "sw_version": self.model_id}

    def config(self, entity: Entity) -> dict[str, Any]:
        return {
            "name": entity.name,
            "unique_id": f"{self.node_id}_{entity.object_id}",
            "object_id": f"{self.node_id}_{entity.object_id}",
            "state_topic": self.state_topic,
            "value_template": entity.template,
            "availability": [{"topic": f"{self.topic_prefix}/{C.STATUS_TOPIC}", "value_template": AVAILABILITY_TEMPLATE,
                              "payload_available": C.STATUS_ONLINE, "payload_not_available": C.STATUS_OFFLINE}],
            "device": self.device(),
            "origin": {"name": "vigil-edge", "sw_version": __version__},
            "qos": 1,
            **entity.extra,
        }

    def messages(self) -> list[tuple[str, str]]:
        """(topic, JSON) of every entity's discovery config (publish retained, QoS 1)."""
        return [(self.config_topic(e), json.dumps(self.config(e), separators=(",", ":"))) for e in ENTITIES]

    def removal_messages(self) -> list[tuple[str, str]]:
        """Empty retained payloads: publishing them deletes the entities from HA and clears their state."""
        return [(self.config_topic(e), "") for e in ENTITIES] + [(self.state_topic, "")]


class HaState:
    """The retained state object every entity reads; updated from alerts and health messages."""

    def __init__(self) -> None:
        self.anomaly_event: str | None = None
        self.fault_events: set[str] = set()
        self.score: float | None = None
        self.threshold: float | None = None
        self.latency_ms: float | None = None
        self.spool_depth = 0

    def on_alert(self, payload: dict[str, Any]) -> None:
        event_id, opening = str(payload.get("event_id")), payload.get("phase") == "open"
        if payload.get("fault"):
            (self.fault_events.add if opening else self.fault_events.discard)(event_id)
        elif opening:
            self.anomaly_event = event_id
        elif self.anomaly_event in (None, event_id):
            self.anomaly_event = None
        if isinstance(payload.get("threshold"), (int, float)):
            self.threshold = float(payload["threshold"])

    def on_health(self, health: dict[str, Any], last_score: float | None) -> None:
        if not health.get("event_open", False):
            self.anomaly_event = None  # the pipeline says no event is open: trust it over a missed close
        value = (health.get("threshold") or {}).get("value")
        self.threshold = float(value) if isinstance(value, (int, float)) else self.threshold
        p50 = (health.get("scoring_latency_ms") or {}).get("p50")
        self.latency_ms = float(p50) if isinstance(p50, (int, float)) else self.latency_ms
        self.spool_depth = int(health.get("spool_depth", 0))
        self.score = last_score if last_score is not None else self.score

    def payload(self) -> str:
        return json.dumps({
            "anomaly": "ON" if self.anomaly_event else "OFF",
            "event_id": self.anomaly_event,
            "sensor_fault": "ON" if self.fault_events else "OFF",
            "score": self.score,
            "threshold": self.threshold,
            "scoring_latency_ms": self.latency_ms,
            "spool_depth": self.spool_depth,
        }, separators=(",", ":"))
