"""MqttSink against a real mosquitto: schema, TLS/mTLS, auth, outage, Last Will, v5.

The observer in these tests is a plain paho client (not our subscriber), so the
sink is checked by an independent reader. Waits poll with deadlines; no timing
is asserted.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import paho.mqtt.client as paho
import pytest
from jsonschema import Draft202012Validator
from paho.mqtt.enums import CallbackAPIVersion

from edge_agent.alerts import AlertEvent, EventPhase
from edge_agent.errors import VigilInputError
from edge_agent.mqtt import reason
from edge_agent.mqtt.connection import Backoff, connect_check
from edge_agent.mqtt.settings import MqttSettings, TlsSettings
from edge_agent.mqtt.sink import MqttSink
from edge_agent.payload import alert_payload
from edge_agent.spool import AlertSpool
from tests.broker import MosquittoBroker, broker, free_port, require_mosquitto  # noqa: F401 (fixture)

REPO = Path(__file__).resolve().parents[1]
SCHEMA = json.loads((REPO / "edge_agent" / "schemas" / "alert.schema.json").read_text())
FAST = {"reconnect_min_s": 0.1, "reconnect_max_s": 0.5, "connect_timeout_s": 5.0}


def wait_for(condition: Callable[[], Any], timeout: float = 15.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def make_alert(i: int, phase: EventPhase = EventPhase.OPEN, device: str = "dev1") -> dict[str, Any]:
    event = AlertEvent(
        event_id=f"{i:032x}", phase=phase, start_row=10 * i, end_row=10 * i + 5,
        start_time=1_790_000_000.0 + i, end_time=1_790_000_000.5 + i if phase is EventPhase.CLOSE else None,
        peak_score=0.9 + i, mean_score=0.5 + i, threshold=0.25, window_count=3,
        feature_errors=np.array([0.6, 0.3, 0.1]),
    )
    return alert_payload(event, device_id=device, model_id="m-0001", feature_names=["ax", "ay", "az"])


class Observer:
    """Records every message under a topic filter, with its retain flag."""

    def __init__(self, port: int, topic: str = "vigil/#", *, persistent_id: str | None = None, tls: dict | None = None,
                 username: str | None = None, password: str | None = None) -> None:
        self.messages: list[tuple[str, str, bool]] = []
        self.subscribed = threading.Event()
        self._lock = threading.Lock()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=persistent_id or "",
                                  clean_session=persistent_id is None)
        if username:
            self.client.username_pw_set(username, password)
        if tls:
            self.client.tls_set(**tls)
        self.client.reconnect_delay_set(0.1, 0.3)

        def on_connect(c: Any, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
            if not rc.is_failure:
                c.subscribe(topic, qos=1)

        def on_message(_c: Any, _u: Any, msg: Any) -> None:
            with self._lock:
                self.messages.append((msg.topic, msg.payload.decode(), bool(msg.retain)))

        self.client.on_connect = on_connect
        self.client.on_message = on_message
        self.client.on_subscribe = lambda *_a: self.subscribed.set()
        self.client.connect("127.0.0.1", port, keepalive=30)
        self.client.loop_start()
        wait_for(self.subscribed.is_set, 10, "observer subscription")

    def payloads(self, suffix: str) -> list[str]:
        with self._lock:
            return [p for t, p, _r in self.messages if t.endswith(suffix)]

    def alerts(self) -> list[dict[str, Any]]:
        return [json.loads(p) for p in self.payloads("/alert")]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def stopper() -> Any:
    """Stops sinks and observers even when a test fails."""
    items: list[Any] = []
    yield items.append
    for item in reversed(items):
        item.stop() if hasattr(item, "stop") else item.close()


# -- unit-level ---------------------------------------------------------------------------


def test_backoff_doubles_with_jitter_and_resets() -> None:
    low = Backoff(1.0, 8.0, rng=lambda: 0.0)
    high = Backoff(1.0, 8.0, rng=lambda: 0.999999)
    assert [low.next_delay() for _ in range(5)] == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert [round(high.next_delay(), 3) for _ in range(5)] == [1.0, 2.0, 4.0, 8.0, 8.0]
    low.reset()
    assert low.next_delay() == 0.5


def test_settings_parse_validate_and_redact(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIGIL_TEST_PW", "s3cret")
    s = MqttSettings.from_dict({"host": "broker.local", "username": "dev", "password_env": "VIGIL_TEST_PW",
                                "protocol": 5})
    assert (s.password, s.protocol, s.resolved_port, s.keepalive) == ("s3cret", "5", 1883, 30)
    assert s.prefix_for("pi-7") == "vigil/pi-7"
    assert s.client_id_for("pi-7") == "vigil-pi-7"
    assert s.to_dict()["password"] == "***" and "s3cret" not in repr(s)
    assert MqttSettings(host="h", tls=TlsSettings()).resolved_port == 8883
    with pytest.raises(VigilInputError) as info:
        MqttSettings.from_dict({"host": "h", "prot": "5"})
    assert info.value.key == "mqtt.prot"
    with pytest.raises(VigilInputError) as info:
        MqttSettings.from_dict({"host": "h", "port": 70000})
    assert info.value.key == "mqtt.port"
    with pytest.raises(VigilInputError) as info:
        MqttSettings.from_dict({"host": "h", "tls": {"ca_file": "/nonexistent/ca.crt"}})
    assert info.value.key == "mqtt.tls.ca_file"
    with pytest.raises(VigilInputError):
        MqttSettings(host="h", topic_prefix="vigil/+/x")


def test_reason_codes_read_as_one_clear_line() -> None:
    assert reason.describe_reason(0x86) == "bad username or password"
    assert reason.describe_reason(5, connack_v3=True).startswith("not authorized")
    assert reason.is_fatal_refusal(0x87) and not reason.is_fatal_refusal(0x88)
    assert "connection refused" in reason.describe_exception(ConnectionRefusedError(), "h", 1883)


def test_offline_sink_spools_alerts_and_drops_health(tmp_path: Path, stopper: Any) -> None:
    settings = MqttSettings(host="127.0.0.1", port=free_port(), **FAST)  # nobody listens there
    sink = MqttSink(settings, "dev1", AlertSpool(tmp_path / "spool.db"))
    stopper(sink)
    sink.start()
    sink.publish_alert(make_alert(1))
    sink.publish_health({"uptime_s": 1})
    stats = wait_for(lambda: (s := sink.stats())["last_error"] and s, what="a connect error")
    assert "connection refused" in stats["last_error"]
    assert (stats["connected"], stats["spool_depth"], stats["health_dropped"], stats["acked"]) == (0, 1, 1, 0)


# -- against mosquitto ------------------------------------------------------------------------


@pytest.mark.broker
@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
def test_alerts_arrive_in_order_and_match_the_schema(broker: MosquittoBroker, tmp_path: Path, stopper: Any,
                                                     protocol: str) -> None:
    observer = Observer(broker.port)
    stopper(observer)
    settings = MqttSettings(host=broker.host, port=broker.port, protocol=protocol, **FAST)
    sink = MqttSink(settings, "dev1", AlertSpool(tmp_path / "spool.db"))
    sink.start()
    assert sink.wait_connected(10)
    sent = [make_alert(1), make_alert(1, EventPhase.CLOSE), make_alert(2)]
    for payload in sent:
        sink.publish_alert(payload)
    sink.publish_health({"uptime_s": 12.5, "model_id": "m-0001"})

    got = wait_for(lambda: len(observer.alerts()) >= 3 and observer.alerts(), what="3 alerts")
    validator = Draft202012Validator(SCHEMA)
    for payload in got:
        validator.validate(payload)
    assert [a["seq"] for a in got] == [1, 2, 3]
    assert [{k: v for k, v in a.items() if k != "seq"} for a in got] == sent
    wait_for(lambda: observer.payloads("/health"), what="health")
    assert json.loads(observer.payloads("/health")[0])["uptime_s"] == 12.5
    assert wait_for(lambda: sink.stats()["spool_depth"] == 0, what="empty spool")
    assert sink.stats()["acked"] == 3

    sink.stop()
    wait_for(lambda: observer.payloads("/status")[-1:] == ["offline"], what="offline")
    assert observer.payloads("/status") == ["online", "offline"]
    # retained: a late subscriber still learns the device is offline
    late = Observer(broker.port, "vigil/dev1/status")
    stopper(late)
    assert wait_for(lambda: late.messages, what="retained status") == [("vigil/dev1/status", "offline", True)]


@pytest.mark.broker
@pytest.mark.parametrize("mutual", [False, True], ids=["server-auth", "mtls"])
def test_tls_with_a_ca_made_in_the_test(tmp_path: Path, stopper: Any, mutual: bool) -> None:
    require_mosquitto()
    b = MosquittoBroker(tmp_path / "b", tls=True, require_client_cert=mutual).start()
    stopper(b)
    t = b.tls_files
    assert t is not None and b.tls_port is not None
    client_cert = {"cert_file": str(t.client_cert), "key_file": str(t.client_key)} if mutual else {}
    tls = TlsSettings(ca_file=str(t.ca_cert), **client_cert)
    settings = MqttSettings(host="127.0.0.1", port=b.tls_port, tls=tls, **FAST)
    assert connect_check(settings, "check", 10) is None
    if mutual:  # without a client certificate the broker must refuse us
        assert connect_check(settings.with_(tls=TlsSettings(ca_file=str(t.ca_cert))), "check", 10) is not None
    assert "certificate verification failed" in (connect_check(settings.with_(tls=TlsSettings()), "check", 10) or "")

    observer = Observer(b.tls_port, tls={"ca_certs": str(t.ca_cert), "certfile": str(t.client_cert),
                                         "keyfile": str(t.client_key)})
    stopper(observer)
    sink = MqttSink(settings, "dev1", AlertSpool(tmp_path / "spool.db"))
    stopper(sink)
    sink.start()
    sink.publish_alert(make_alert(7))
    assert wait_for(observer.alerts, what="alert over TLS")[0]["event_id"] == f"{7:032x}"


@pytest.mark.broker
def test_password_auth_and_a_wrong_password_reported_clearly(tmp_path: Path, stopper: Any) -> None:
    require_mosquitto()
    b = MosquittoBroker(tmp_path / "b", users={"dev1": "right-pw", "watcher": "w"}).start()
    stopper(b)
    good = MqttSettings(host="127.0.0.1", port=b.port, username="dev1", password="right-pw", **FAST)
    observer = Observer(b.port, username="watcher", password="w")
    stopper(observer)
    sink = MqttSink(good, "dev1", AlertSpool(tmp_path / "good.db"))
    stopper(sink)
    sink.start()
    sink.publish_alert(make_alert(1))
    wait_for(observer.alerts, what="alert with password auth")

    bad = good.with_(password="wrong-pw")
    bad_sink = MqttSink(bad, "dev2", AlertSpool(tmp_path / "bad.db"))
    stopper(bad_sink)
    refusal = bad_sink.connect_check(5)
    assert refusal is not None and ("bad username or password" in refusal or "not authorized" in refusal)
    bad_sink.start()
    bad_sink.publish_alert(make_alert(2))
    stats = wait_for(lambda: (s := bad_sink.stats())["connect_failures"] >= 2 and s, what="retries")
    assert "bad username or password" in stats["last_error"] or "not authorized" in stats["last_error"]
    assert "\n" not in stats["last_error"]
    assert bad_sink.fatal_refusal is not None
    assert (stats["connected"], stats["spool_depth"]) == (0, 1)  # kept, waiting for a fixed broker


@pytest.mark.broker
def test_broker_outage_every_alert_arrives_in_order(tmp_path: Path, stopper: Any) -> None:
    require_mosquitto()
    # persistence: the observer's session (and its queued QoS 1 messages) survive the restart,
    # so the test sees what a real dashboard with a persistent session sees.
    b = MosquittoBroker(tmp_path / "b", persistence=True).start()
    stopper(b)
    observer = Observer(b.port, "vigil/dev1/alert", persistent_id="outage-observer")
    stopper(observer)
    # a small in-flight window, so the replay has to refill it several times
    sink = MqttSink(MqttSettings(host="127.0.0.1", port=b.port, **FAST), "dev1", AlertSpool(tmp_path / "spool.db"),
                    max_inflight=3)
    stopper(sink)
    sink.start()
    for i in range(3):
        sink.publish_alert(make_alert(i))
    wait_for(lambda: len(observer.alerts()) == 3, what="alerts before the outage")

    b.stop()
    wait_for(lambda: not sink.connected, what="sink noticing the outage")
    for i in range(3, 15):
        sink.publish_alert(make_alert(i, EventPhase.OPEN if i % 2 else EventPhase.CLOSE))
    assert sink.stats()["spool_depth"] == 12
    b.start()

    wait_for(lambda: {a["seq"] for a in observer.alerts()} >= set(range(1, 16)), 30, "all 15 alerts after restart")
    seqs = [a["seq"] for a in observer.alerts()]
    first_seen = list(dict.fromkeys(seqs))  # duplicates are allowed (at-least-once), disorder is not
    assert first_seen == list(range(1, 16))
    wait_for(lambda: sink.stats()["spool_depth"] == 0, what="spool drained")
    assert sink.stats()["reconnects"] >= 1


_CHILD = """
import sys, time
from edge_agent.mqtt.settings import MqttSettings
from edge_agent.mqtt.sink import MqttSink
from edge_agent.spool import AlertSpool
from tests.test_mqtt_sink import make_alert
port, spool_path, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
settings = MqttSettings(host="127.0.0.1", port=port, reconnect_min_s=0.1, reconnect_max_s=0.5)
sink = MqttSink(settings, "dev1", AlertSpool(spool_path))
sink.start()
for i in range(n):
    sink.publish_alert(make_alert(i))
print("spooled", sink.wait_connected(float(sys.argv[4])), flush=True)
time.sleep(600)
"""


def _run_child(port: int, spool: Path, n: int, wait_s: float) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, str(port), str(spool), str(n), str(wait_s)],
                            stdout=subprocess.PIPE, text=True, cwd=REPO, env=env)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("spooled"), f"child failed: {line!r}"
    return proc


@pytest.mark.broker
def test_last_will_offline_after_sigkill(broker: MosquittoBroker, tmp_path: Path, stopper: Any) -> None:
    observer = Observer(broker.port, "vigil/dev1/status")
    stopper(observer)
    proc = _run_child(broker.port, tmp_path / "spool.db", 0, 10)
    try:
        wait_for(lambda: observer.payloads("/status") == ["online"], what="online")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    wait_for(lambda: observer.payloads("/status") == ["online", "offline"], what="offline from the Last Will")


@pytest.mark.broker
def test_alerts_spooled_before_a_kill_are_delivered_after_restart(broker: MosquittoBroker, tmp_path: Path,
                                                                   stopper: Any) -> None:
    spool_path = tmp_path / "spool.db"
    proc = _run_child(free_port(), spool_path, 4, 0.2)  # no broker on that port: alerts stay spooled
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)

    observer = Observer(broker.port, "vigil/dev1/alert")
    stopper(observer)
    sink = MqttSink(MqttSettings(host="127.0.0.1", port=broker.port, **FAST), "dev1", AlertSpool(spool_path))
    stopper(sink)
    assert sink.stats()["spool_depth"] == 4
    sink.start()
    sink.publish_alert(make_alert(99))  # a new alert goes after the old ones
    wait_for(lambda: len(observer.alerts()) >= 5, what="replayed alerts")
    assert [a["seq"] for a in observer.alerts()] == [1, 2, 3, 4, 5]
    assert observer.alerts()[-1]["event_id"] == f"{99:032x}"
    wait_for(lambda: sink.stats()["spool_depth"] == 0, what="spool drained")


@pytest.mark.broker
def test_mqtt5_acl_rejection_keeps_the_alert_spooled(tmp_path: Path, stopper: Any) -> None:
    # With MQTT 3.1.1 mosquitto PUBACKs a denied publish and drops it; only MQTT 5 tells us.
    require_mosquitto()
    b = MosquittoBroker(tmp_path / "b", acl="topic read vigil/#").start()
    stopper(b)
    sink = MqttSink(MqttSettings(host="127.0.0.1", port=b.port, protocol="5", **FAST), "dev1",
                    AlertSpool(tmp_path / "spool.db"))
    stopper(sink)
    sink.start()
    sink.publish_alert(make_alert(1))
    stats = wait_for(lambda: (s := sink.stats())["rejected"] and s, what="a rejected PUBACK")
    assert (stats["acked"], stats["spool_depth"]) == (0, 1)
    assert "not authorized" in stats["last_error"]
    assert sink.wait_idle(5)  # a rejected alert does not hold up stop()
