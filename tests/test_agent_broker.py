"""The agent against a real mosquitto: alerts arrive and validate, survive kill -9, Last Will, SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path

import jsonschema
import numpy as np
import paho.mqtt.client as mqtt
import pytest

from edge_agent.spool import AlertSpool
from tests.broker import (  # noqa: F401 (broker is a fixture)
    MosquittoBroker,
    broker,
    free_port,
    make_tls_files,
    mosquitto_path,
    port_open,
    require_mosquitto,
)
from tests.models import normal_rows, with_anomalies
from tests.test_agent_service import SCHEMA, agent_toml, read_jsonl, vigil_argv, write_anomalous_csv

pytestmark = pytest.mark.broker
DEVICE = "test-dev"


class Collector:
    """A subscriber on ``vigil/<device>/#`` that records every message."""

    def __init__(self, port: int, device: str = DEVICE) -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-{uuid.uuid4().hex[:8]}")
        self.client.on_connect = lambda c, *_: c.subscribe(f"vigil/{device}/#", qos=1)
        self.client.on_subscribe = lambda *_: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert self._subscribed.wait(10), "subscriber did not get its SUBACK"

    def _on_message(self, _client, _userdata, msg) -> None:
        with self._lock:
            self.messages.append((msg.topic, bytes(msg.payload), bool(msg.retain)))

    def alerts(self) -> list[dict]:
        with self._lock:
            return [json.loads(p) for t, p, _ in self.messages if t.endswith("/alert")]

    def statuses(self) -> list[tuple[str, bool]]:
        with self._lock:
            return [(p.decode(), r) for t, p, r in self.messages if t.endswith("/status")]

    def health(self) -> list[dict]:
        with self._lock:
            return [json.loads(p) for t, p, _ in self.messages if t.endswith("/health")]

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


def mqtt_section(port: int, extra: str = "") -> str:
    return (f'[mqtt]\nhost = "127.0.0.1"\nport = {port}\nreconnect_min_s = 0.05\nreconnect_max_s = 0.5\n'
            f'[spool]\npath = "state/spool.db"\n[sinks]\njsonl = "alerts.jsonl"\n{extra}')


def start_agent(config: Path, log: Path) -> subprocess.Popen:
    # Logs go to a file: a full pipe nobody reads would block the agent.
    with log.open("a") as out:
        return subprocess.Popen(vigil_argv("agent", "run", "--config", str(config)), stdout=out,
                                stderr=subprocess.STDOUT)


def stop(proc: subprocess.Popen, sig: int) -> int:
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        return proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()


def write_normal_csv(path: Path, n_rows: int = 600) -> Path:
    np.savetxt(path, normal_rows(n_rows, 3, 0, start=720), delimiter=",", header="f0,f1,f2", comments="",
               fmt="%.6f")
    return path


def strictly_increasing(values: list[int]) -> bool:
    return all(b > a for a, b in zip(values, values[1:], strict=False))


@pytest.mark.slow  # uses the converted tiny bundle
def test_alerts_arrive_in_order_and_validate(tmp_path: Path, tiny_bundle_3f: Path, broker: MosquittoBroker) -> None:
    write_anomalous_csv(tmp_path / "data.csv")
    config = agent_toml(tmp_path, tiny_bundle_3f, source='kind = "replay"\npath = "data.csv"\npace = "fast"\n',
                        sections=mqtt_section(broker.port, "[health]\ninterval_s = 0.2\n"))
    sub = Collector(broker.port)
    try:
        proc = start_agent(config, tmp_path / "agent.log")
        assert proc.wait(60) == 0, (tmp_path / "agent.log").read_text()
        written = read_jsonl(tmp_path / "alerts.jsonl")
        assert len(written) >= 4
        assert sub.wait(lambda: len(sub.alerts()) >= len(written))
        received = sub.alerts()
        for payload in received:
            jsonschema.validate(payload, SCHEMA)
        assert [(a["event_id"], a["phase"]) for a in received] == [(a["event_id"], a["phase"]) for a in written]
        assert strictly_increasing([a["seq"] for a in received])
        assert all(a["device_id"] == DEVICE for a in received)
        assert sub.wait(lambda: sub.statuses()[-1:] == [("offline", False)])
        assert ("online", False) in sub.statuses()
        assert sub.health() and sub.health()[-1]["device_id"] == DEVICE
        assert isinstance(sub.health()[-1]["spool_depth"], int)
    finally:
        sub.close()
    assert AlertSpool(tmp_path / "state" / "spool.db").depth() == 0


@pytest.mark.slow  # uses the converted tiny bundle
def test_kill_with_spooled_alerts_then_deliver_after_restart(tmp_path: Path, tiny_bundle_3f: Path,
                                                             broker: MosquittoBroker) -> None:
    broker.stop()  # the broker is down while anomalies happen
    write_anomalous_csv(tmp_path / "data.csv")
    write_normal_csv(tmp_path / "normal.csv")
    looping = 'kind = "replay"\npath = "data.csv"\npace = "fast"\nloop = true\n'
    config = agent_toml(tmp_path / "a", tiny_bundle_3f, source=looping.replace("data.csv", "../data.csv"),
                        sections=mqtt_section(broker.port))
    proc = start_agent(config, tmp_path / "agent1.log")
    try:
        jsonl = tmp_path / "a" / "alerts.jsonl"
        deadline = time.monotonic() + 60
        while len(read_jsonl(jsonl)) < 6 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
    finally:
        proc.kill()  # SIGKILL: no flush, no goodbye
        proc.wait(30)
    before_kill = read_jsonl(jsonl)
    assert len(before_kill) >= 6, (tmp_path / "agent1.log").read_text()
    with AlertSpool(tmp_path / "a" / "state" / "spool.db") as spool:
        spooled = spool.depth()
    assert spooled >= len(before_kill)  # the spool is written before the JSONL copy

    broker.start()
    sub = Collector(broker.port)
    try:
        # Restart with a calm, endless source: only the spooled alerts are expected.
        config.write_text(config.read_text().replace(looping.replace("data.csv", "../data.csv"),
                                                     'kind = "replay"\npath = "../normal.csv"\npace = "realtime"\n'
                                                     'rate_hz = 100.0\nspeed = 2.0\nloop = true\n'))
        proc = start_agent(config, tmp_path / "agent2.log")
        assert sub.wait(lambda: len(sub.alerts()) >= spooled, timeout=60), (tmp_path / "agent2.log").read_text()
        received = sub.alerts()[:spooled]
        got = [(a["event_id"], a["phase"]) for a in received]
        assert got[: len(before_kill)] == [(a["event_id"], a["phase"]) for a in before_kill]  # all, in order
        assert strictly_increasing([a["seq"] for a in received])
        assert sub.wait(lambda: ("online", False) in sub.statuses())
        assert stop(proc, signal.SIGTERM) == 0, (tmp_path / "agent2.log").read_text()
        assert sub.wait(lambda: sub.statuses()[-1:] == [("offline", False)])
    finally:
        sub.close()
        if proc.poll() is None:
            proc.kill()
    # A late subscriber sees the retained status: offline after a clean stop.
    late = Collector(broker.port)
    try:
        assert late.wait(lambda: late.statuses() == [("offline", True)], timeout=10)
    finally:
        late.close()


@pytest.mark.slow  # uses the converted tiny bundle
def test_last_will_offline_after_kill(tmp_path: Path, tiny_bundle_3f: Path, broker: MosquittoBroker) -> None:
    write_normal_csv(tmp_path / "normal.csv")
    config = agent_toml(tmp_path, tiny_bundle_3f,
                        source='kind = "replay"\npath = "normal.csv"\npace = "realtime"\nrate_hz = 100.0\nspeed = '
                            '2.0\nloop = true\n',
                        sections=mqtt_section(broker.port))
    sub = Collector(broker.port)
    proc = start_agent(config, tmp_path / "agent.log")
    try:
        assert sub.wait(lambda: ("online", False) in sub.statuses(), timeout=60), (tmp_path / "agent.log").read_text()
        proc.kill()
        proc.wait(30)
        # The broker publishes the Last Will as soon as the dead client's socket closes.
        assert sub.wait(lambda: sub.statuses()[-1:] == [("offline", False)], timeout=30)
    finally:
        sub.close()
        if proc.poll() is None:
            proc.kill()


@pytest.mark.slow  # uses the converted tiny bundle
def test_shipped_replay_profile_publishes_alerts(tmp_path: Path, tiny_bundle_3f: Path, broker: MosquittoBroker) -> None:
    # The demo's layout: <root>/firmware_configs/profiles/replay.toml next to <root>/demo_out/.
    profile = Path(__file__).resolve().parents[1] / "firmware_configs" / "profiles" / "replay.toml"
    folder = tmp_path / "firmware_configs" / "profiles"
    folder.mkdir(parents=True)
    demo = tmp_path / "demo_out"
    demo.mkdir()
    (demo / "demo.vigil").write_bytes(tiny_bundle_3f.read_bytes())
    start = int(profile.read_text().split('rows = "')[1].split(":")[0])
    rows = np.vstack([normal_rows(start, 3, 0), with_anomalies(normal_rows(1200, 3, 0, start=720), [(300, 340)])])
    from edge_agent.bundle import load_bundle

    rate = load_bundle(tiny_bundle_3f).sampling_rate_hz or 100.0  # the demo's file is at its bundle's rate
    stamps = 1.7e9 + np.arange(len(rows)) / rate
    np.savetxt(demo / "vibration.csv", np.column_stack([stamps, rows]), delimiter=",",
               header="timestamp,f0,f1,f2", comments="", fmt="%.6f")
    config = folder / "replay.toml"
    text = profile.read_text()
    assert 'host = "localhost"' in text and "port = 1883" in text
    config.write_text(text.replace("port = 1883", f"port = {broker.port}"))  # the test broker's free port
    sub = Collector(broker.port, device="replay-1")
    try:
        proc = start_agent(config, tmp_path / "agent.log")
        assert proc.wait(120) == 0, (tmp_path / "agent.log").read_text()
        written = read_jsonl(demo / "replay-alerts.jsonl")
        assert written and written[0]["start_sample"] >= start
        assert sub.wait(lambda: len(sub.alerts()) >= len(written))
        assert [a["event_id"] for a in sub.alerts()] == [a["event_id"] for a in written]
    finally:
        sub.close()


def test_shipped_mosquitto_config_confines_each_device_to_its_prefix(tmp_path: Path) -> None:
    require_mosquitto()
    shipped = Path(__file__).resolve().parents[1] / "firmware_configs" / "mosquitto"
    tls = make_tls_files(tmp_path / "tls")
    folder = tmp_path / "vigil"
    folder.mkdir()
    for name in ("ca.crt", "server.crt", "server.key"):
        (folder / name.replace("server", "broker")).write_bytes((tls.ca_cert.parent / name).read_bytes())
    (folder / "acl").write_text((shipped / "acl").read_text())
    users = {"dev-a": "pw-a", "vigil-monitor": "pw-m"}
    for i, (user, password) in enumerate(users.items()):
        create = ["-c"] if i == 0 else []
        subprocess.run(["mosquitto_passwd", "-b", *create, str(folder / "passwords"), user, password],
                       check=True, capture_output=True)
    tls_port, local_port = free_port(), free_port()
    conf = (shipped / "mosquitto.conf").read_text()
    conf = (conf.replace("/etc/mosquitto/vigil/", f"{folder}/").replace("/var/lib/mosquitto/", f"{tmp_path}/")
            .replace("listener 8883", f"listener {tls_port} 127.0.0.1")
            .replace("listener 1883 127.0.0.1", f"listener {local_port} 127.0.0.1"))
    if os.geteuid() == 0:
        conf += "user root\n"  # else mosquitto drops to a user that cannot read the temp dir
    (tmp_path / "mosquitto.conf").write_text(conf + f"log_dest file {tmp_path}/mosquitto.log\n")
    proc = subprocess.Popen([mosquitto_path(), "-c", str(tmp_path / "mosquitto.conf")], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while not port_open(tls_port) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert port_open(tls_port), proc.stderr.read().decode() if proc.poll() is not None else "no listener"
        monitor = tls_client("vigil-monitor", "pw-m", tls.ca_cert, tls_port)
        got: list[str] = []
        subscribed = threading.Event()
        monitor.on_message = lambda _c, _u, msg: got.append(msg.topic)
        monitor.on_subscribe = lambda *_: subscribed.set()
        monitor.subscribe("vigil/#", qos=1)
        assert subscribed.wait(10)
        device = tls_client("dev-a", "pw-a", tls.ca_cert, tls_port)
        device.publish("vigil/dev-b/alert", b"{}", qos=1).wait_for_publish(10)  # someone else's prefix: dropped
        device.publish("vigil/dev-a/alert", b"{}", qos=1).wait_for_publish(10)
        deadline = time.monotonic() + 10
        while "vigil/dev-a/alert" not in got and time.monotonic() < deadline:
            time.sleep(0.05)
        assert got == ["vigil/dev-a/alert"]
        with pytest.raises(ConnectionRefusedError):
            tls_client("dev-a", "wrong", tls.ca_cert, tls_port)
        for client in (monitor, device):
            client.loop_stop()
            client.disconnect()
    finally:
        proc.terminate()
        proc.wait(10)


def tls_client(user: str, password: str, ca: Path, port: int) -> mqtt.Client:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"{user}-{uuid.uuid4().hex[:6]}")
    client.username_pw_set(user, password)
    client.tls_set(ca_certs=str(ca))
    connected = threading.Event()
    refused: list[object] = []
    client.on_connect = lambda _c, _u, _f, reason, _p: (refused.append(reason) if reason.is_failure else None,
                                                       connected.set())
    client.connect("127.0.0.1", port)
    client.loop_start()
    assert connected.wait(10), f"{user}: no CONNACK"
    if refused:
        client.loop_stop()
        raise ConnectionRefusedError(str(refused[0]))
    return client
