"""The shipped mosquitto ACL lets a device publish its own Home Assistant discovery configs, no one else's."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from edge_agent.homeassistant import Discovery, node_id_for
from tests.broker import MosquittoBroker, require_mosquitto

ACL = (Path(__file__).resolve().parents[1] / "firmware_configs" / "mosquitto" / "acl").read_text()
USERS = {"dev1": "pw-1", "dev2": "pw-2", "homeassistant": "pw-ha"}


def _client(broker: MosquittoBroker, user: str) -> mqtt.Client:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"t-{user}", protocol=mqtt.MQTTv5)
    client.username_pw_set(user, USERS[user])
    client.connect(broker.host, broker.port)
    client.loop_start()
    return client


@pytest.mark.broker
def test_a_device_writes_only_its_own_discovery_configs(tmp_path: Path) -> None:
    require_mosquitto()
    seen: dict[str, bytes] = {}
    lock = threading.Lock()

    def on_message(_c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        with lock:
            seen[msg.topic] = msg.payload

    with MosquittoBroker(tmp_path / "b", users=USERS, acl=ACL) as broker:
        ha = _client(broker, "homeassistant")
        ha.on_message = on_message
        ha.subscribe("homeassistant/#", qos=1)
        time.sleep(0.5)
        own = Discovery("homeassistant", "vigil/dev1", "dev1", node_id_for("dev1"), "dev1", "model-a").messages()
        forged = Discovery("homeassistant", "vigil/dev2", "dev2", node_id_for("dev2"), "dev2", "model-a").messages()
        dev1 = _client(broker, "dev1")
        try:
            for topic, payload in own + forged:
                dev1.publish(topic, payload, qos=1, retain=True).wait_for_publish(10)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and len(seen) < len(own):
                time.sleep(0.05)
            time.sleep(0.5)  # a denied publish would arrive in this time if the ACL let it through
        finally:
            dev1.loop_stop()
            dev1.disconnect()
            ha.loop_stop()
            ha.disconnect()
    with lock:
        assert set(seen) == {topic for topic, _ in own}, sorted(seen)
