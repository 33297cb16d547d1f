"""MQTT faults against a real mosquitto: drop after CONNACK, hung broker, refused client certificates.

A broker that drops every connection right after CONNACK is a real mosquitto
behind :class:`DropAfterConnackProxy` (127.0.0.1 only), which forwards the
broker's first answer and then closes both sides.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edge_agent.mqtt.connection import MqttConnection, connect_check
from edge_agent.mqtt.settings import MqttSettings, TlsSettings
from tests.broker import MosquittoBroker, broker, free_port, require_mosquitto  # noqa: F401 (fixture)
from tests.test_mqtt_sink import wait_for

FAST = {"reconnect_min_s": 0.02, "reconnect_max_s": 0.4, "connect_timeout_s": 5.0}


class DropAfterConnackProxy:
    """127.0.0.1 TCP proxy to a broker that closes each connection once the broker has answered CONNECT."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = free_port()
        self.connections = 0
        self._server = socket.create_server(("127.0.0.1", self.port))
        self._server.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._server.accept()
            except OSError:
                continue
            self.connections += 1
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    def _relay(self, client: socket.socket) -> None:
        with client, socket.create_connection(("127.0.0.1", self.upstream_port), timeout=5) as upstream:
            client.settimeout(5)
            upstream.sendall(client.recv(65536))  # CONNECT
            answer = upstream.recv(65536)  # CONNACK
            client.sendall(answer)
            time.sleep(0.05)  # let the client read the CONNACK, then the "broker" goes away

    def close(self) -> None:
        self._stop.set()
        self._server.close()
        self._thread.join(2)


@pytest.fixture
def dropper(broker: MosquittoBroker) -> Iterator[DropAfterConnackProxy]:
    proxy = DropAfterConnackProxy(broker.port)
    yield proxy
    proxy.close()


@pytest.mark.broker
def test_backoff_keeps_growing_when_every_connection_drops_right_after_connack(
        dropper: DropAfterConnackProxy) -> None:
    conn = MqttConnection(MqttSettings(host="127.0.0.1", port=dropper.port, **FAST), "flapper", stable_after_s=5.0)
    conn.start()
    try:
        wait_for(lambda: conn.connects >= 6, 30, "six CONNACKs through the dropping proxy")
        # Every session got its CONNACK, yet none lasted: the backoff was never reset ...
        assert conn.backoff_resets == 0
        # ... so the delay grew with each of them instead of starting from reconnect_min_s again.
        assert conn.backoff_attempt >= 5
    finally:
        conn.stop(1)


@pytest.mark.broker
def test_backoff_resets_after_a_connection_stayed_up(broker: MosquittoBroker) -> None:
    conn = MqttConnection(MqttSettings(host="127.0.0.1", port=broker.port, **FAST), "steady", stable_after_s=0.3)
    conn.start()
    try:
        wait_for(lambda: conn.connected, 10, "connected")
        time.sleep(0.5)  # longer than stable_after_s
        broker.restart()
        wait_for(lambda: conn.connects >= 2, 20, "reconnected after the restart")
        assert conn.backoff_resets >= 1
    finally:
        conn.stop(1)


def _pid(b: MosquittoBroker) -> int:
    assert b._proc is not None
    return b._proc.pid


@pytest.mark.broker
def test_hung_broker_is_reported_as_accepting_but_never_answering(broker: MosquittoBroker) -> None:
    settings = MqttSettings(host="127.0.0.1", port=broker.port, reconnect_min_s=0.1, reconnect_max_s=0.5,
                            connect_timeout_s=1.0)
    os.kill(_pid(broker), signal.SIGSTOP)
    try:
        answer = connect_check(settings, "hung-check", timeout=1.5)
        assert answer is not None and "sent no CONNACK" in answer and "hung" in answer
        conn = MqttConnection(settings, "hung")
        conn.start()
        try:
            wait_for(lambda: conn.last_error and "sent no CONNACK" in conn.last_error, 15, "the hung-broker diagnosis")
        finally:
            conn.stop(1)
    finally:
        os.kill(_pid(broker), signal.SIGCONT)


def _expired_client_cert(folder: Path) -> Path:
    """The test CA signs the client key again with a certificate that expired yesterday."""
    proc = subprocess.run(["openssl", "x509", "-req", "-in", "client.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                           "-CAcreateserial", "-out", "expired.crt", "-days", "-1", "-extfile", "client.ext"],
                          cwd=folder, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return folder / "expired.crt"


@pytest.mark.broker
def test_missing_or_expired_client_certificate_is_named(tmp_path: Path) -> None:
    require_mosquitto()
    with MosquittoBroker(tmp_path / "b", tls=True, require_client_cert=True) as b:
        t = b.tls_files
        assert t is not None and b.tls_port is not None

        def check(tls: TlsSettings) -> Any:
            return connect_check(MqttSettings(host="127.0.0.1", port=b.tls_port, tls=tls, connect_timeout_s=5),
                                 "cert-check", timeout=5)

        missing = check(TlsSettings(ca_file=str(t.ca_cert)))
        assert "requires a client certificate and none is configured" in missing
        expired = _expired_client_cert(t.ca_cert.parent)
        answer = check(TlsSettings(ca_file=str(t.ca_cert), cert_file=str(expired), key_file=str(t.client_key)))
        assert f"client certificate {expired} expired on " in answer
        tls = TlsSettings(ca_file=str(t.ca_cert), cert_file=str(t.client_cert), key_file=str(t.client_key))
        assert check(tls) is None


def test_certificate_validity_is_read_from_the_pem(tmp_path: Path) -> None:
    import datetime as dt

    from edge_agent.mqtt.diagnose import certificate_validity
    from tests.broker import make_tls_files

    files = make_tls_files(tmp_path / "tls")
    validity = certificate_validity(files.client_cert)
    assert validity is not None
    not_before, not_after = validity
    now = dt.datetime.now(dt.timezone.utc)
    assert not_before <= now < not_after and (not_after - not_before).days == 2
    (tmp_path / "junk.pem").write_text("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    assert certificate_validity(tmp_path / "junk.pem") is None


# -- defect 4: MQTT 3.1.1 acknowledges and drops what the ACL denies ----------------------------


@pytest.mark.broker
def test_mqtt311_acl_drop_is_detected_and_the_alerts_stay_spooled(tmp_path: Path) -> None:
    from edge_agent.mqtt.sink import MqttSink
    from edge_agent.spool import AlertSpool
    from tests.test_mqtt_sink import make_alert

    require_mosquitto()
    with MosquittoBroker(tmp_path / "b", acl="topic read vigil/#") as b:  # may read, may not publish
        sink = MqttSink(MqttSettings(host="127.0.0.1", port=b.port, protocol="3.1.1", **FAST), "dev1",
                        AlertSpool(tmp_path / "spool.db"), echo_timeout_s=0.5)
        sink.start()
        try:
            for i in range(3):
                sink.publish_alert(make_alert(i))
            stats = wait_for(lambda: (s := sink.stats())["unconfirmed"] >= 3 and s, 20, "three unconfirmed alerts")
            assert stats["delivery_check"] == "echo"
            assert stats["spool_depth"] == 3 and stats["acked"] == 0  # PUBACKed, dropped, but not deleted
            assert "did not come back on vigil/dev1/alert" in stats["last_error"]
            assert "ACL" in stats["last_error"]
        finally:
            sink.stop(1)


@pytest.mark.broker
def test_mqtt311_alerts_are_deleted_once_their_echo_confirms_delivery(broker: MosquittoBroker,
                                                                      tmp_path: Path) -> None:
    from edge_agent.mqtt.sink import MqttSink
    from edge_agent.spool import AlertSpool
    from tests.test_mqtt_sink import Observer, make_alert

    observer = Observer(broker.port, "vigil/dev1/alert")
    sink = MqttSink(MqttSettings(host="127.0.0.1", port=broker.port, protocol="3.1.1", **FAST), "dev1",
                    AlertSpool(tmp_path / "spool.db"), max_inflight=2)
    sink.start()
    try:
        for i in range(6):
            sink.publish_alert(make_alert(i))
        wait_for(lambda: sink.stats()["spool_depth"] == 0, 20, "spool drained by echoes")
        stats = sink.stats()
        assert (stats["acked"], stats["unconfirmed"], stats["awaiting_echo"]) == (6, 0, 0)
        wait_for(lambda: len(observer.alerts()) == 6, 10, "the observer's copies")
        assert [a["seq"] for a in observer.alerts()] == [1, 2, 3, 4, 5, 6]
    finally:
        sink.stop(1)
        observer.close()


# -- defect 5: the example broker config keeps what it acknowledged across a crash ------------

EXAMPLE_CONF = Path(__file__).resolve().parents[1] / "firmware_configs" / "mosquitto" / "mosquitto.conf"


def _example_persistence_lines() -> list[str]:
    keep = ("persistence ", "autosave_on_changes", "autosave_interval", "max_queued_messages")
    lines = [line.strip() for line in EXAMPLE_CONF.read_text().splitlines()]
    return [line for line in lines if line.startswith(keep)]


def _start_mosquitto(conf: Path, port: int) -> subprocess.Popen[bytes]:
    from tests.broker import mosquitto_path, port_open

    proc = subprocess.Popen([str(mosquitto_path()), "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    wait_for(lambda: port_open(port), 10, "mosquitto listening")
    return proc


@pytest.mark.broker
def test_example_broker_config_keeps_acknowledged_alerts_across_kill_9(tmp_path: Path) -> None:
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    require_mosquitto()
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    lines = [f"listener {port} 127.0.0.1", "allow_anonymous true", f"persistence_location {tmp_path}/",
             *_example_persistence_lines()]
    if os.geteuid() == 0:
        lines.append("user root")
    conf.write_text("\n".join(lines) + "\n")
    assert "autosave_on_changes true" in lines

    def dashboard() -> Any:
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id="dashboard", clean_session=False,
                             protocol=paho.MQTTv311)
        client.received = []  # type: ignore[attr-defined]
        client.on_message = lambda _c, _u, msg: client.received.append(msg.payload)  # type: ignore[attr-defined]
        client.connect("127.0.0.1", port)
        client.loop_start()
        return client

    broker_proc = _start_mosquitto(conf, port)
    try:
        sub = dashboard()
        sub.subscribe("vigil/+/alert", qos=1)[1]
        time.sleep(0.3)
        sub.disconnect()
        sub.loop_stop()
        pub = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
        pub.connect("127.0.0.1", port)
        pub.loop_start()
        pub.publish("vigil/dev1/alert", b'{"seq": 1}', qos=1).wait_for_publish(10)  # PUBACKed: the device deletes it
        pub.disconnect()
        pub.loop_stop()
        time.sleep(0.3)  # the broker's next loop turn: where autosave_on_changes writes the snapshot
        broker_proc.send_signal(signal.SIGKILL)
        broker_proc.wait(10)
        broker_proc = _start_mosquitto(conf, port)
        sub = dashboard()
        wait_for(lambda: sub.received, 10, "the alert queued before the crash")
        assert sub.received == [b'{"seq": 1}']
        sub.disconnect()
        sub.loop_stop()
    finally:
        broker_proc.kill()
        broker_proc.wait(10)
