"""Chaos part 1: alert delivery under process, broker and disk faults (real mosquitto on 127.0.0.1, real files).

Every scenario returns the same ledger: ``produced`` (alerts the producer had
spooled: printed only after ``publish_alert`` returned), ``delivered``
(distinct alerts an independent paho subscriber with a persistent session
received), ``counted_dropped`` / ``counted_lost`` (what the spool admits in
its counters), ``kept_in_spool`` (refused or unconfirmed, still waiting),
``lost_uncounted`` = produced - delivered - counted - kept (target 0),
``duplicates``, ``tracebacks`` and ``crashes``.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edge_agent.mqtt.settings import MqttSettings
from edge_agent.mqtt.sink import MqttSink
from edge_agent.spool import AlertSpool
from tests.broker import MosquittoBroker
from tests.test_mqtt_sink import Observer, make_alert

ROOT = Path(__file__).resolve().parent.parent
DEVICE = "chaos"
TOPIC = f"vigil/{DEVICE}/alert"
FAST = {"reconnect_min_s": 0.05, "reconnect_max_s": 0.5, "connect_timeout_s": 3.0}


class ErrorCounter(logging.Handler):
    """Counts internal errors the agent code logs instead of raising (pump or callback failures)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if "pump error" in text or "callback" in text and "failed" in text or record.exc_info:
            self.count += 1


def wait_until(condition: Callable[[], Any], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def ledger(name: str, produced: set[str], observer: Observer | None, spool_path: Path | None, started: float,
           **extra: Any) -> dict[str, Any]:
    received = [a.get("event_id") for a in observer.alerts()] if observer is not None else []
    delivered = set(received) & produced
    counters = {"dropped": 0, "lost": 0, "depth": 0}
    if spool_path is not None and spool_path.exists():
        with AlertSpool(spool_path) as spool:
            counters = {k: spool.stats()[k] for k in ("dropped", "lost", "depth")}
    kept = extra.pop("kept_in_spool", 0)
    uncounted = len(produced) - len(delivered) - counters["dropped"] - counters["lost"] - kept
    return {"scenario": name, "produced": len(produced), "delivered": len(delivered),
            "counted_dropped": counters["dropped"], "counted_lost": counters["lost"], "kept_in_spool": kept,
            "lost_uncounted": max(0, uncounted), "duplicates": len(received) - len(set(received)),
            "tracebacks": extra.pop("tracebacks", 0), "crashes": extra.pop("crashes", 0),
            "seconds": round(time.monotonic() - started, 1), **extra}


def alert(i: int, tag: int) -> dict[str, Any]:
    payload = make_alert(i, device=DEVICE)
    payload["event_id"] = f"{tag:08x}{i:024x}"
    return payload


def durable(b: MosquittoBroker) -> MosquittoBroker:
    """The example config's durability (autosave_on_changes) on a test broker."""
    text = b.conf_path.read_text().replace("autosave_interval 0", "autosave_on_changes true\nautosave_interval 1")
    b.conf_path.write_text(text)
    return b


def kill_broker(b: MosquittoBroker) -> None:
    if b._proc is not None:
        b._proc.send_signal(signal.SIGKILL)
        b._proc.wait(10)
        if b._proc.stderr:
            b._proc.stderr.close()
        b._proc = None


# -- kill -9 storm: a producer process killed again and again, some kills during broker outages ---------

_PRODUCER = """
import sys, time
from benchmarks.chaos_delivery import FAST, DEVICE, alert
from edge_agent.mqtt.settings import MqttSettings
from edge_agent.mqtt.sink import MqttSink
from edge_agent.spool import AlertSpool
port, spool, tag, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
sink = MqttSink(MqttSettings(host="127.0.0.1", port=port, **FAST), DEVICE, AlertSpool(spool))
sink.start()
for i in range(n):
    payload = alert(i, tag)
    sink.publish_alert(payload)
    print(payload["event_id"], flush=True)  # only after it is spooled
    time.sleep(0.02)
if n == 0:
    ok = sink.wait_connected(30) and sink.wait_idle(60)
    print("drained" if ok and sink.stats()["spool_depth"] == 0 else "not-drained", flush=True)
time.sleep(600)
"""


class Producer:
    def __init__(self, port: int, spool: Path, tag: int, n: int) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen([sys.executable, "-c", _PRODUCER, str(port), str(spool), str(tag), str(n)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.strip())

    def kill(self) -> tuple[set[str], int]:
        """SIGKILL; (event ids it had spooled, tracebacks on its stderr)."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self._reader.join(5)
        stderr = self.proc.stderr.read() if self.proc.stderr else ""
        return {line for line in self.lines if len(line) == 32}, stderr.count("Traceback")


def kill9_storm(work: Path, cycles: int, rng: random.Random) -> dict[str, Any]:
    started = time.monotonic()
    b = MosquittoBroker(work / "broker", persistence=True).start()
    observer = Observer(b.port, TOPIC, persistent_id="chaos-storm")
    spool = work / "spool.db"
    produced: set[str] = set()
    tracebacks = outages = 0
    try:
        for cycle in range(cycles):
            producer = Producer(b.port, spool, cycle, 10_000)
            outage = cycle % 4 == 2
            wait_until(lambda p=producer: p.lines, 30)  # the interpreter has started and spools
            time.sleep(rng.uniform(0.1, 0.4))
            if outage:  # the broker goes down while the producer runs, and stays down over the kill
                b.stop()
                outages += 1
                time.sleep(rng.uniform(0.2, 0.4))
            ids, tb = producer.kill()
            produced |= ids
            tracebacks += tb
            if outage:
                b.start()
        drainer = Producer(b.port, spool, cycles, 0)
        drained = wait_until(lambda: "drained" in drainer.lines or "not-drained" in drainer.lines, 90)
        _, tb = drainer.kill()
        tracebacks += tb
        wait_until(lambda: produced <= {a.get("event_id") for a in observer.alerts()}, 30)
    finally:
        observer.close()
        b.stop()
    return ledger("kill -9 storm", produced, observer, spool, started, tracebacks=tracebacks,
                  kill_cycles=cycles, broker_outages=outages, drained=drained)


# -- in-process sink scenarios -------------------------------------------------------------------------


def _sink(port: int, spool: AlertSpool, protocol: str = "5", **kw: Any) -> MqttSink:
    return MqttSink(MqttSettings(host="127.0.0.1", port=port, protocol=protocol, **FAST), DEVICE, spool, **kw)


def broker_flaps(work: Path, flaps: int) -> dict[str, Any]:
    started = time.monotonic()
    b = durable(MosquittoBroker(work / "broker", persistence=True)).start()
    observer = Observer(b.port, TOPIC, persistent_id="chaos-flaps")
    spool_path = work / "spool.db"
    sink = _sink(b.port, AlertSpool(spool_path))
    sink.start()
    produced: set[str] = set()
    n = 0
    try:
        for flap in range(flaps):
            for _ in range(4):
                payload = alert(n, 1)
                sink.publish_alert(payload)
                produced.add(payload["event_id"])
                n += 1
            time.sleep(0.3)
            b.stop() if flap % 2 == 0 else kill_broker(b)  # SIGTERM, then SIGKILL, alternately
            for _ in range(2):
                payload = alert(n, 1)
                sink.publish_alert(payload)
                produced.add(payload["event_id"])
                n += 1
            b.start()
        wait_until(lambda: sink.stats()["spool_depth"] == 0, 30)
        wait_until(lambda: produced <= {a.get("event_id") for a in observer.alerts()}, 20)
    finally:
        sink.stop(2)
        sink.spool.close()
        observer.close()
        b.stop()
    return ledger("broker SIGTERM/SIGKILL flaps", produced, observer, spool_path, started, flaps=flaps)


def hung_broker(work: Path, hang_s: float) -> dict[str, Any]:
    from edge_agent.mqtt.connection import connect_check

    started = time.monotonic()
    b = MosquittoBroker(work / "broker").start()
    observer = Observer(b.port, TOPIC)
    spool_path = work / "spool.db"
    sink = _sink(b.port, AlertSpool(spool_path))
    sink.start()
    produced: set[str] = set()
    assert b._proc is not None
    pid = b._proc.pid
    try:
        sink.wait_connected(10)
        os.kill(pid, signal.SIGSTOP)
        for i in range(10):
            payload = alert(i, 2)
            sink.publish_alert(payload)
            produced.add(payload["event_id"])
        diagnosis = connect_check(MqttSettings(host="127.0.0.1", port=b.port, connect_timeout_s=1.0), "hung", 1.5)
        time.sleep(max(0.0, hang_s - 1.5))
        os.kill(pid, signal.SIGCONT)
        wait_until(lambda: sink.stats()["spool_depth"] == 0, 60)
        wait_until(lambda: produced <= {a.get("event_id") for a in observer.alerts()}, 20)
    finally:
        os.kill(pid, signal.SIGCONT)
        sink.stop(2)
        sink.spool.close()
        observer.close()
        b.stop()
    return ledger("hung broker (SIGSTOP)", produced, observer, spool_path, started, hang_s=hang_s,
                  diagnosis=diagnosis)


def acl_denial(work: Path, protocol: str) -> dict[str, Any]:
    started = time.monotonic()
    b = MosquittoBroker(work / "broker", acl="topic read vigil/#").start()
    observer = Observer(b.port, TOPIC)
    spool_path = work / "spool.db"
    sink = _sink(b.port, AlertSpool(spool_path), protocol, echo_timeout_s=0.5)
    sink.start()
    produced: set[str] = set()
    try:
        for i in range(5):
            payload = alert(i, 3)
            sink.publish_alert(payload)
            produced.add(payload["event_id"])
        key = "unconfirmed" if protocol == "3.1.1" else "rejected"
        wait_until(lambda: sink.stats()[key] >= 5, 20)
        stats = sink.stats()
    finally:
        sink.stop(1)
        sink.spool.close()
        observer.close()
        b.stop()
    return ledger(f"ACL denial, MQTT {protocol}", produced, observer, spool_path, started,
                  kept_in_spool=stats["spool_depth"], reported=stats["last_error"])
