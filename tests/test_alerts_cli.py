"""``vigil alerts`` as a subprocess against a real mosquitto and a real MqttSink."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge_agent.alerts import EventPhase
from edge_agent.mqtt.settings import MqttSettings
from edge_agent.mqtt.sink import MqttSink
from edge_agent.spool import AlertSpool
from tests.broker import MosquittoBroker, broker, free_port, require_mosquitto  # noqa: F401 (fixture)
from tests.test_mqtt_sink import FAST, make_alert, wait_for

REPO = Path(__file__).resolve().parents[1]
VIGIL = [sys.executable, "-c", "from vigil.cli import main; main()"]


def run_alerts(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.Popen([*VIGIL, "alerts", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=REPO, env=full_env)


@pytest.mark.broker
def test_vigil_alerts_shows_and_writes_alerts_without_duplicates(broker: MosquittoBroker, tmp_path: Path) -> None:
    out = tmp_path / "seen" / "alerts.jsonl"
    proc = run_alerts("--host", broker.host, "--port", str(broker.port), "--device", "dev1", "--out", str(out),
                      "--count", "3", "--timeout", "60")
    assert proc.stderr is not None
    ready = proc.stderr.readline()  # printed once the alert subscription is acknowledged
    assert "listening on vigil/dev1/alert" in ready, ready

    sink = MqttSink(MqttSettings(host=broker.host, port=broker.port, **FAST), "dev1", AlertSpool(tmp_path / "spool.db"))
    sink.start()
    try:
        sink.publish_alert(make_alert(1))
        assert sink.wait_idle(15)
        # a re-send after a crash looks exactly like this: same payload, same seq
        dup = {**make_alert(1), "seq": 1}
        client = paho.Client(CallbackAPIVersion.VERSION2)
        client.connect(broker.host, broker.port)
        client.loop_start()
        client.publish("vigil/dev1/alert", json.dumps(dup), qos=1).wait_for_publish(10)
        other = json.dumps({**make_alert(5, device="other"), "seq": 1})
        client.publish("vigil/other/alert", other, qos=1).wait_for_publish(10)
        client.disconnect()
        client.loop_stop()
        sink.publish_alert(make_alert(1, EventPhase.CLOSE))
        sink.publish_alert(make_alert(2))
        stdout, stderr = proc.communicate(timeout=60)
        assert sink.wait_idle(15) and sink.stats()["spool_depth"] == 0
    finally:
        sink.stop()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(a["seq"], a["phase"], a["device_id"]) for a in lines] == [
        (1, "open", "dev1"), (2, "close", "dev1"), (3, "open", "dev1")]
    shown = [line for line in stdout.splitlines() if not line.startswith("status ")]
    assert len(shown) == 3
    assert " dev1 OPEN  event 00000000 seq 1 " in shown[0] and "top ax:0.60" in shown[0]
    assert "CLOSE" in shown[1]
    assert "status dev1 online" in stdout


@pytest.mark.broker
def test_vigil_alerts_wrong_password_exits_2_with_one_line(tmp_path: Path) -> None:
    require_mosquitto()
    with MosquittoBroker(tmp_path / "b", users={"viewer": "right"}) as b:
        proc = run_alerts("--host", b.host, "--port", str(b.port), "--username", "viewer", "--password-env",
                          "VIGIL_TEST_PW", "--timeout", "30", env={"VIGIL_TEST_PW": "wrong"})
        stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vigil alerts: ")
    assert "bad username or password" in lines[0] or "not authorized" in lines[0]
    assert "Traceback" not in stderr


def test_vigil_alerts_times_out_with_exit_1_when_count_not_reached() -> None:
    proc = run_alerts("--host", "127.0.0.1", "--port", str(free_port()), "--count", "1", "--timeout", "1")
    _stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert "connection refused" in stderr
    assert "timed out after 1 s with 0 of 1 alert(s)" in stderr


MALFORMED: list[bytes] = [
    b'"just a JSON string"',
    b"[1, 2, 3]",
    b"42",
    b"null",
    b"\xff\xfe not utf-8",
    b"{not json",
    b"[" * 100_000 + b"]" * 100_000,
    b'{"seq": ' + b"9" * 5000 + b"}",
    json.dumps({**make_alert(7), "event_id": ["unhashable"], "seq": 3}).encode(),
    json.dumps({**make_alert(8), "seq": {"a": 1}}).encode(),
    json.dumps({k: v for k, v in make_alert(9).items() if k != "phase"}).encode(),
    json.dumps({**make_alert(10), "top_features": [{"feature": "ax", "share": 7}]}).encode(),
    b'{"schema": "vigil.alert/1", "peak_score": NaN}',
    b" " * 200_000,
]


@pytest.mark.broker
def test_vigil_alerts_counts_and_skips_every_malformed_message(broker: MosquittoBroker, tmp_path: Path) -> None:
    out = tmp_path / "alerts.jsonl"
    proc = run_alerts("--host", broker.host, "--port", str(broker.port), "--out", str(out), "--count", "1",
                      "--timeout", "60")
    assert proc.stderr is not None
    assert "listening on vigil/+/alert" in proc.stderr.readline()
    client = paho.Client(CallbackAPIVersion.VERSION2)
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        for payload in MALFORMED:
            client.publish("vigil/dev1/alert", payload, qos=1).wait_for_publish(10)
        client.publish("vigil/dev1/alert", json.dumps({**make_alert(1), "seq": 1}), qos=1).wait_for_publish(10)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        client.disconnect()
        client.loop_stop()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert f"{len(MALFORMED)} malformed message(s) skipped" in stderr
    skipped = [line for line in stderr.splitlines() if "skipped a malformed message on vigil/dev1/alert" in line]
    assert len(skipped) == len(MALFORMED)
    assert [json.loads(line)["seq"] for line in out.read_text().splitlines()] == [1]
    assert " dev1 OPEN  event 00000000 seq 1 " in stdout


def test_alert_check_accepts_what_the_agent_publishes_and_names_the_first_problem() -> None:
    from edge_agent.mqtt.alert_check import parse_alert

    good = {**make_alert(3), "seq": 12}
    assert parse_alert(json.dumps(good).encode()) == good
    with pytest.raises(ValueError, match=r"\$.window_count: below 1"):
        parse_alert(json.dumps({**good, "window_count": 0}).encode())
    with pytest.raises(ValueError, match="unexpected key 'extra'"):
        parse_alert(json.dumps({**good, "extra": 1}).encode())
    with pytest.raises(ValueError, match=r"\$.seq: must be integer"):
        parse_alert(json.dumps({**good, "seq": True}).encode())


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.broker
def test_shared_subscription_splits_the_alerts_between_consumers(tmp_path: Path) -> None:
    """Through the shipped ACL (firmware_configs/mosquitto/acl): the monitor account's read rights cover
    ``$share/...`` too, the device publishes under its own prefix only."""
    require_mosquitto()
    acl = (REPO / "firmware_configs" / "mosquitto" / "acl").read_text()
    with MosquittoBroker(tmp_path / "b", users={"vigil-monitor": "pw-m", "dev1": "pw-d"}, acl=acl) as broker:
        _split_between_consumers(broker, tmp_path)


def _split_between_consumers(broker: MosquittoBroker, tmp_path: Path) -> None:
    n_alerts = 30
    outs = {name: tmp_path / f"{name}.jsonl" for name in ("a", "b", "all")}
    login = ["--username", "vigil-monitor", "--password-env", "VIGIL_TEST_PW"]
    procs = {name: run_alerts("--host", broker.host, "--port", str(broker.port), *login, "--out", str(out),
                              "--timeout", "90", *(["--share", "workers"] if name != "all" else []),
                              env={"VIGIL_TEST_PW": "pw-m"})
             for name, out in outs.items()}
    try:
        for name, proc in procs.items():
            assert proc.stderr is not None
            ready = proc.stderr.readline()
            expected = "vigil/+/alert" if name == "all" else "$share/workers/vigil/+/alert"
            assert f"listening on {expected} " in ready, ready
        sink = MqttSink(MqttSettings(host=broker.host, port=broker.port, username="dev1", password="pw-d", **FAST),
                        "dev1", AlertSpool(tmp_path / "spool.db"))
        sink.start()
        try:
            for i in range(n_alerts):
                sink.publish_alert(make_alert(i))
            assert sink.wait_idle(30) and sink.stats()["spool_depth"] == 0
        finally:
            sink.stop()
        wait_for(lambda: len(_read_jsonl(outs["all"])) == n_alerts
                 and len(_read_jsonl(outs["a"])) + len(_read_jsonl(outs["b"])) >= n_alerts,
                 timeout=30, what="every alert at the consumers")
    finally:
        for proc in procs.values():
            proc.kill()
            proc.communicate(timeout=30)
    seqs = {name: [a["seq"] for a in _read_jsonl(out)] for name, out in outs.items()}
    everything = sorted(seqs["all"])
    assert everything == list(range(1, n_alerts + 1))
    # Each alert went to exactly one member of the group, and both members got some.
    assert seqs["a"] and seqs["b"] and not set(seqs["a"]) & set(seqs["b"])
    assert sorted(seqs["a"] + seqs["b"]) == everything


def test_share_group_must_be_one_topic_level() -> None:
    proc = run_alerts("--host", "127.0.0.1", "--port", str(free_port()), "--share", "a/b", "--timeout", "1")
    _stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 2 and len(stderr.strip().splitlines()) == 1 and "--share" in stderr, stderr
