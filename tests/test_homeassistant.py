"""Home Assistant discovery against a real mosquitto: retained, well-formed configs, a retained state."""

from __future__ import annotations

import json
import re
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from edge_agent.homeassistant import ENTITIES, Discovery, HaState, node_id_for
from tests.broker import MosquittoBroker, require_mosquitto
from tests.test_agent_broker import mqtt_section, start_agent, stop
from tests.test_agent_service import agent_toml, write_anomalous_csv

DEVICE = "test-dev"
REQUIRED = ("name", "unique_id", "state_topic", "value_template", "availability", "device")


class Recorder:
    """Subscribes to ``filters``; keeps (topic, payload, retained) in arrival order."""

    def __init__(self, port: int, *filters: str) -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"ha-test-{uuid.uuid4().hex[:8]}")
        self.client.on_connect = lambda c, *_: c.subscribe([(f, 1) for f in filters])
        self.client.on_subscribe = lambda *_: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert self._subscribed.wait(10)

    def _on_message(self, _c, _u, msg) -> None:
        with self._lock:
            self.messages.append((msg.topic, bytes(msg.payload), bool(msg.retain)))

    def on(self, suffix: str) -> list[tuple[str, bytes, bool]]:
        with self._lock:
            return [m for m in self.messages if m[0].endswith(suffix)]

    def wait(self, condition, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return True
            time.sleep(0.05)
        return condition()

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[MosquittoBroker]:
    """A started anonymous mosquitto (like tests.broker's ``broker`` fixture, under a name ruff accepts here)."""
    require_mosquitto()
    with MosquittoBroker(tmp_path / "mosquitto") as started:
        yield started


def template_keys(template: str) -> set[str]:
    return set(re.findall(r"value_json\.(\w+)", template))


def check_config(topic: str, config: dict, state_keys: set[str]) -> None:
    component, node, object_id = topic.split("/")[1:4]
    assert topic == f"homeassistant/{component}/{node}/{object_id}/config"
    assert component in ("binary_sensor", "sensor") and node == node_id_for(DEVICE)
    for key in REQUIRED:
        assert config.get(key), (topic, key)
    assert config["state_topic"] == f"vigil/{DEVICE}/state"
    assert template_keys(config["value_template"]) <= state_keys, config["value_template"]
    (avail,) = config["availability"]
    assert avail["topic"] == f"vigil/{DEVICE}/status" and avail["payload_available"] == "online"
    assert avail["payload_not_available"] == "offline" and "value_template" in avail
    device = config["device"]
    assert device["identifiers"] == [node] and device["name"] == DEVICE and device["sw_version"]
    assert device["model_id"] == device["sw_version"] and device["manufacturer"] == "vigil-edge"
    if component == "binary_sensor":
        assert config["payload_on"] == "ON" and config["payload_off"] == "OFF"


def test_discovery_payloads_and_state_without_a_broker() -> None:
    discovery = Discovery("homeassistant", "vigil/d1", "d1", node_id_for("d1"), "d1", "model-abc")
    messages = discovery.messages()
    state = HaState()
    keys = set(json.loads(state.payload()))
    assert len({json.loads(p)["unique_id"] for _, p in messages}) == len(ENTITIES) == len(messages)
    for _topic, payload in messages:
        config = json.loads(payload)
        assert template_keys(config["value_template"]) <= keys and config["device"]["model_id"] == "model-abc"
    assert all(p == "" for _, p in discovery.removal_messages())
    assert node_id_for("a.b c") == "vigil_a_b_c"
    state.on_alert({"event_id": "e1", "phase": "open", "threshold": 0.5})
    state.on_alert({"event_id": "f1", "phase": "open", "fault": "stuck"})
    assert json.loads(state.payload())["anomaly"] == "ON" and json.loads(state.payload())["sensor_fault"] == "ON"
    state.on_alert({"event_id": "e1", "phase": "close"})
    state.on_health({"event_open": False, "threshold": {"value": 0.7}, "scoring_latency_ms": {"p50": 0.2},
                     "spool_depth": 4}, 0.31)
    now = json.loads(state.payload())
    assert now == {"anomaly": "OFF", "event_id": None, "sensor_fault": "ON", "score": 0.31, "threshold": 0.7,
                   "scoring_latency_ms": 0.2, "spool_depth": 4}


@pytest.mark.slow  # uses the converted tiny bundle
def test_discovery_is_retained_well_formed_and_state_follows_events(tmp_path: Path, tiny_bundle_3f: Path,
                                                                   mosquitto: MosquittoBroker) -> None:
    write_anomalous_csv(tmp_path / "data.csv")
    config = agent_toml(tmp_path, tiny_bundle_3f,
                        source='kind = "replay"\npath = "data.csv"\npace = "realtime"\nrate_hz = 100.0\n'
                               'speed = 4.0\nloop = true\n',
                        sections=mqtt_section(mosquitto.port, "[health]\ninterval_s = 0.2\n[homeassistant]\n"
                                                           "enabled = true\n"))
    live = Recorder(mosquitto.port, f"vigil/{DEVICE}/state")
    proc = start_agent(config, tmp_path / "agent.log")
    try:
        assert live.wait(lambda: {json.loads(p)["anomaly"] for _, p, _ in live.on("/state")} >= {"ON", "OFF"},
                         timeout=60), (tmp_path / "agent.log").read_text()
        # A subscriber arriving later (HA after its restart) gets configs and state from the broker's retained copies.
        late = Recorder(mosquitto.port, "homeassistant/#", f"vigil/{DEVICE}/state", f"vigil/{DEVICE}/status")
        try:
            assert late.wait(lambda: len(late.on("/config")) == len(ENTITIES) and late.on("/state"))
            configs = late.on("/config")
            assert all(retained for _, _, retained in configs) and late.on("/state")[0][2]  # the broker's copies
            state = json.loads(late.on("/state")[-1][1])
            assert set(state) >= {"anomaly", "sensor_fault", "score", "threshold", "scoring_latency_ms",
                                  "spool_depth"}
            parsed = {topic: json.loads(payload) for topic, payload, _ in configs}
            for topic, cfg in parsed.items():
                check_config(topic, cfg, set(state))
            assert len({c["unique_id"] for c in parsed.values()}) == len(ENTITIES)
            assert late.wait(lambda: isinstance(json.loads(late.on("/state")[-1][1])["score"], float))
            assert late.on("/status")[0][1] == b"online"
            # HA's birth message: the agent publishes its configs again.
            before = len(late.on("/config"))
            late.client.publish("homeassistant/status", "online", qos=1)
            assert late.wait(lambda: len(late.on("/config")) >= before + len(ENTITIES))
        finally:
            late.close()
        assert stop(proc, signal.SIGTERM) == 0, (tmp_path / "agent.log").read_text()
    finally:
        live.close()
        if proc.poll() is None:
            proc.kill()
    after = Recorder(mosquitto.port, f"vigil/{DEVICE}/state", f"vigil/{DEVICE}/status")
    try:  # after a clean stop: unavailable, and the event was closed
        assert after.wait(lambda: after.on("/status") and after.on("/state"))
        assert after.on("/status")[-1][1] == b"offline"
        assert json.loads(after.on("/state")[-1][1])["anomaly"] == "OFF"
    finally:
        after.close()


def test_a_new_bundle_republishes_the_device_block(mosquitto: MosquittoBroker) -> None:
    from edge_agent.addon_mqtt import AddonLink
    from edge_agent.mqtt.settings import MqttSettings

    def discovery(model_id: str) -> Discovery:
        return Discovery("homeassistant", f"vigil/{DEVICE}", DEVICE, node_id_for(DEVICE), DEVICE, model_id)

    rec = Recorder(mosquitto.port, "homeassistant/#")
    link = AddonLink(MqttSettings(host="127.0.0.1", port=mosquitto.port), "vigil-test-ext", f"vigil/{DEVICE}",
                     discovery=discovery("model-a"), state=HaState(), store=None)
    link.start()
    try:
        def versions() -> set[str]:
            return {json.loads(p)["device"]["sw_version"] for _, p, _ in rec.on("/config")}

        assert rec.wait(lambda: versions() == {"model-a"} and len(rec.on("/config")) == len(ENTITIES))
        link.republish_discovery(discovery("model-b"))
        assert rec.wait(lambda: "model-b" in versions() and len(rec.on("/config")) == 2 * len(ENTITIES))
    finally:
        link.stop()
        rec.close()


def test_discovery_refused_by_the_acl_is_counted(tmp_path: Path) -> None:
    from edge_agent.addon_mqtt import AddonLink
    from edge_agent.mqtt.settings import MqttSettings

    require_mosquitto()
    # Anonymous clients may use vigil/# only: the discovery topics are denied (MQTT 5 PUBACK 0x87).
    with MosquittoBroker(tmp_path / "acl-broker", acl="topic readwrite vigil/#") as acl_broker:
        link = AddonLink(MqttSettings(host="127.0.0.1", port=acl_broker.port, protocol="5"), "vigil-test-ext",
                         f"vigil/{DEVICE}", store=None, state=HaState(),
                         discovery=Discovery("homeassistant", f"vigil/{DEVICE}", DEVICE, node_id_for(DEVICE), DEVICE,
                                             "m"))
        link.start()
        try:
            deadline = time.monotonic() + 20
            while link.rejected < len(ENTITIES) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert link.rejected == len(ENTITIES)  # the configs; the state topic under vigil/ went through
        finally:
            link.stop()


def _removal_config(folder: Path, extra: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "agent.toml"
    path.write_text(f'[device]\nid = "{DEVICE}"\n[bundle]\npath = "missing.vigil"\n[source]\nkind = "stdin"\n'
                    f'features = ["a"]\n{extra}')
    return path


def test_homeassistant_remove_deletes_the_retained_entities_and_state(tmp_path: Path,
                                                                      mosquitto: MosquittoBroker) -> None:
    from edge_agent.addon_mqtt import AddonLink
    from edge_agent.mqtt.settings import MqttSettings
    from tests.test_agent_service import vigil

    # What an agent with [homeassistant] enabled leaves at the broker: retained configs and state.
    link = AddonLink(MqttSettings(host="127.0.0.1", port=mosquitto.port), "vigil-test-ext", f"vigil/{DEVICE}",
                     discovery=Discovery("homeassistant", f"vigil/{DEVICE}", DEVICE, node_id_for(DEVICE), DEVICE,
                                         "model-a"), state=HaState(), store=None)
    link.start()
    seen = Recorder(mosquitto.port, "homeassistant/#", f"vigil/{DEVICE}/state")
    try:
        assert seen.wait(lambda: len(seen.on("/config")) == len(ENTITIES))
        link.publish_state()
        assert seen.wait(lambda: seen.on("/state"))
    finally:
        link.stop()
        seen.close()

    config = _removal_config(tmp_path, f'[mqtt]\nhost = "127.0.0.1"\nport = {mosquitto.port}\n'
                                       "[homeassistant]\nenabled = false\n")
    done = vigil("homeassistant", "remove", "--config", str(config))
    assert done.returncode == 0, done.stderr
    assert f"removed device {DEVICE} (node {node_id_for(DEVICE)})" in done.stdout
    assert f"{len(ENTITIES)} entities" in done.stdout and "enabled = true" not in done.stdout

    # A subscriber arriving now (HA after a restart) gets no config and no state: the broker dropped them.
    # The marker is retained after the removal, so once it arrived every retained copy has been sent.
    marker = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"ha-marker-{uuid.uuid4().hex[:8]}")
    marker.connect("127.0.0.1", mosquitto.port)
    marker.loop_start()
    marker.publish("homeassistant/zz_marker", "x", qos=1, retain=True).wait_for_publish(10)
    marker.loop_stop()
    marker.disconnect()
    late = Recorder(mosquitto.port, "homeassistant/#", f"vigil/{DEVICE}/state")
    try:
        assert late.wait(lambda: late.on("/zz_marker"))
        assert late.on("/config") == [] and late.on("/state") == []
    finally:
        late.close()


def test_homeassistant_remove_says_what_is_missing_and_warns_when_still_enabled(tmp_path: Path,
                                                                                mosquitto: MosquittoBroker) -> None:
    from tests.test_agent_service import vigil

    no_broker = vigil("homeassistant", "remove", "--config", str(_removal_config(tmp_path / "a", "")))
    assert no_broker.returncode == 2 and no_broker.stdout == ""
    assert len(no_broker.stderr.strip().splitlines()) == 1 and "[mqtt] is not configured" in no_broker.stderr
    enabled = _removal_config(tmp_path / "b", f'[mqtt]\nhost = "127.0.0.1"\nport = {mosquitto.port}\n'
                                              "[homeassistant]\nenabled = true\n")
    done = vigil("homeassistant", "remove", "--config", str(enabled))
    assert done.returncode == 0, done.stderr
    assert "publishes the entities again at its next connection" in done.stdout
