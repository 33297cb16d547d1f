"""Restarts must not look like cleared faults (issue 11, defect 9), tried as they happen.

A real agent process is killed with SIGKILL while an event is open; the next
start closes that event with ``close_reason = agent_restarted``; ``vigil alerts``
(a real subprocess on a real mosquitto) shows the reason of every close.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from edge_agent.alerts import EventPhase
from tests.broker import MosquittoBroker, broker  # noqa: F401 (fixture)
from tests.models import normal_rows, with_anomalies
from tests.test_agent_service import SCHEMA, agent_toml, read_jsonl, vigil_argv, write_anomalous_csv


def _wait(condition, timeout: float, proc: subprocess.Popen | None = None) -> bool:  # type: ignore[type-arg]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(0.05)
    return bool(condition())


@pytest.mark.slow  # uses the converted tiny bundle
def test_kill_9_with_an_event_open_then_restart_closes_it_with_agent_restarted(
        tmp_path: Path, tiny_bundle_3f: Path) -> None:
    from edge_agent.event_state import STATE_FILE

    # An endless anomaly at realtime pace: the event opens and is still open when the agent is killed.
    loud = with_anomalies(normal_rows(400, 3, 0, start=720), [(0, 399)])
    np.savetxt(tmp_path / "loud.csv", loud, delimiter=",", header="f0,f1,f2", comments="", fmt="%.6f")
    spool = '[sinks]\njsonl = "alerts.jsonl"\n[spool]\npath = "state/spool.db"\n'
    killed = agent_toml(tmp_path / "first", tiny_bundle_3f, sections=spool, source=f"""
        kind = "replay"
        path = "{tmp_path / 'loud.csv'}"
        pace = "realtime"
        rate_hz = 100.0
        speed = 4.0
        loop = true
        """)
    alerts_file = tmp_path / "first" / "alerts.jsonl"
    proc = subprocess.Popen(vigil_argv("agent", "run", "--config", str(killed)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert _wait(lambda: read_jsonl(alerts_file), 90, proc), "no event opened before the kill"
        proc.send_signal(signal.SIGKILL)  # no shutdown path runs: no close is published
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    opened = read_jsonl(alerts_file)
    assert [a["phase"] for a in opened] == ["open"], opened
    state = json.loads((tmp_path / "first" / "state" / STATE_FILE).read_text())
    assert list(state) == [opened[0]["event_id"]]  # the open event's identity survived the kill

    # The restart (same state directory, quiet data) closes the killed run's event first.
    write_anomalous_csv(tmp_path / "quiet.csv", n_rows=200, ranges=[])
    restarted = agent_toml(tmp_path / "first", tiny_bundle_3f, sections=spool.replace("alerts.jsonl", "after.jsonl"),
                           source=f'kind = "replay"\npath = "{tmp_path / "quiet.csv"}"\npace = "fast"\n')
    result = subprocess.run(vigil_argv("agent", "run", "--config", str(restarted)), capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    after = read_jsonl(tmp_path / "first" / "after.jsonl")
    assert after, result.stderr
    close = after[0]
    assert (close["event_id"], close["phase"], close["close_reason"]) == (opened[0]["event_id"], "close",
                                                                          "agent_restarted")
    jsonschema.validate(close, SCHEMA)
    assert "left open by the previous run" in result.stderr + result.stdout
    assert not (tmp_path / "first" / "state" / STATE_FILE).exists()  # clean stop: nothing open any more


@pytest.mark.broker
def test_vigil_alerts_shows_why_each_event_closed(broker: MosquittoBroker, tmp_path: Path) -> None:  # noqa: F811
    from edge_agent.mqtt.settings import MqttSettings
    from edge_agent.mqtt.sink import MqttSink
    from edge_agent.spool import AlertSpool
    from tests.test_alerts_cli import run_alerts
    from tests.test_mqtt_sink import FAST, make_alert

    proc = run_alerts("--host", broker.host, "--port", str(broker.port), "--device", "dev1", "--count", "3",
                      "--timeout", "60")
    assert proc.stderr is not None
    assert "listening on vigil/dev1/alert" in proc.stderr.readline()
    sink = MqttSink(MqttSettings(host=broker.host, port=broker.port, **FAST), "dev1", AlertSpool(tmp_path / "s.db"))
    sink.start()
    try:
        for i, reason in enumerate(("normal", "agent_stopped", "agent_restarted")):
            sink.publish_alert({**make_alert(i, EventPhase.CLOSE), "close_reason": reason})
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        sink.stop()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    closes = [line for line in stdout.splitlines() if " CLOSE " in line]
    assert [line.rsplit(" reason ", 1)[-1] for line in closes] == ["normal", "agent_stopped", "agent_restarted"]
