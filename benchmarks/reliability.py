"""Benchmark 5: alerts through broker outages, end to end with the real agent and mosquitto.

Setup: a real mosquitto (``tests.broker.MosquittoBroker``, persistence on, so a
subscriber's persistent session and its queued QoS 1 messages survive a
restart, as on a production broker), a subscriber with a persistent session
(clean_session = false, QoS 1) on ``vigil/bench/alert``, and the real agent
(``vigil agent run``) with the window-128/hop-32 reference bundle on the
synthetic 3-axis source with injected faults (bearing impacts, imbalance,
spikes, a flat-lined axis), paced at ``--speed`` x 1 kHz, a deliberately chatty
alert policy (``[alerts]`` k = n = m = 1, no cooldown, no smoothing, the fixed
threshold: many events open and close, so alerts are produced while the broker
is down; the bundle's recommended policy yields a handful). The source seed is
the reference model's training seed (the synthetic generator draws a machine per
seed; on another seed's machine this model scores every window anomalous and
one event stays open), MQTT reconnect backoff
0.1..1 s. While the replay runs, the broker is stopped for ``--outage`` seconds
``--outages`` times (SIGTERM, then started again on the same port).

Produced = the alerts the agent wrote to its JSONL sink (every alert it
published, in order); delivered = distinct (event_id, phase) the subscriber
received; lost = produced - delivered; duplicates = deliveries beyond the
first; in order = first deliveries in production order; spool peak = the
largest row count of the agent's SQLite spool, polled every 50 ms (and the
largest ``spool_depth`` seen in its health snapshot, written every 0.2 s).

Run: ``.venv/bin/python -m benchmarks.reliability``.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.common import ROOT, log, md_table, write_results
from benchmarks.procstat import Child

COMMAND = ".venv/bin/python -m benchmarks.reliability"
VIGIL = ROOT / ".venv" / "bin" / "vigil"
TOPIC = "vigil/bench/alert"


class Subscriber:
    """paho client with a persistent session; records every alert delivery."""

    def __init__(self, port: int) -> None:
        import paho.mqtt.client as paho
        from paho.mqtt.enums import CallbackAPIVersion

        self.received: list[tuple[float, dict[str, Any]]] = []
        self.connects = 0
        self._lock = threading.Lock()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-observer", clean_session=False)
        self.client.reconnect_delay_set(0.1, 1.0)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port, keepalive=10)
        self.client.loop_start()

    def _on_connect(self, client: Any, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        self.connects += 1
        client.subscribe(TOPIC, qos=1)

    def _on_message(self, _c: Any, _u: Any, msg: Any) -> None:
        with self._lock:
            self.received.append((time.time(), json.loads(msg.payload)))

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return [p for _, p in self.received]

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


class SpoolWatcher(threading.Thread):
    """Polls the agent's spool table (read-only) for its peak depth."""

    def __init__(self, path: Path, health: Path) -> None:
        super().__init__(daemon=True)
        self.path, self.health, self.peak, self.samples = path, health, 0, 0
        self.health_peak: int | None = None
        self.last_health: dict[str, Any] | None = None
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(0.05):
            self._read_health()
            if not self.path.exists():
                continue
            try:
                with sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=0.05) as db:
                    depth = int(db.execute("SELECT COUNT(*) FROM spool").fetchone()[0])
                self.peak, self.samples = max(self.peak, depth), self.samples + 1
            except sqlite3.Error:
                pass

    def _read_health(self) -> None:
        """The JSONL sink keeps the latest health message as a snapshot file."""
        try:
            doc = json.loads(self.health.read_text())
        except (OSError, json.JSONDecodeError):
            return
        self.last_health = doc
        self.health_peak = max(self.health_peak or 0, int(doc.get("spool_depth", 0)))

    def stop(self) -> None:
        self._halt.set()
        self.join(2)


def agent_config(folder: Path, bundle: str, port: int, n_rows: int, speed: float) -> Path:
    path = folder / "agent.toml"
    path.write_text(f"""[device]
id = "bench"

[bundle]
path = "{bundle}"

[source]
kind = "synthetic"
rate_hz = 1000.0
seed = 1
faults = true
n_rows = {n_rows}
pace = "realtime"
speed = {speed}

[alerts]
dynamic_threshold = false
k = 1
n = 1
m = 1
cooldown = 0
smoothing = 1.0

[mqtt]
host = "127.0.0.1"
port = {port}
reconnect_min_s = 0.1
reconnect_max_s = 1.0

[spool]
path = "{folder / 'spool.db'}"

[sinks]
jsonl = "{folder / 'produced.jsonl'}"
health_jsonl = true

[health]
interval_s = 0.2
""")
    return path


def read_jsonl(path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    alerts, health = [], []
    for line in path.read_text().splitlines() if path.is_file() else []:
        doc = json.loads(line)
        (alerts if doc.get("schema", "").startswith("vigil.alert") else health).append(doc)
    return alerts, health


def run_once(folder: Path, bundle: str, outages: int, outage_s: float, n_rows: int, speed: float) -> dict[str, Any]:
    from tests.broker import MosquittoBroker

    broker = MosquittoBroker(folder / "mosquitto", persistence=True).start()
    sub = Subscriber(broker.port)
    time.sleep(0.5)
    cfg = agent_config(folder, bundle, broker.port, n_rows, speed)
    watcher = SpoolWatcher(folder / "spool.db", folder / "produced.health.json")
    watcher.start()
    agent = Child([str(VIGIL), "agent", "run", "--config", str(cfg)], ROOT, stderr_path=folder / "agent.err")
    duration = n_rows / (1000.0 * speed)
    schedule = []
    try:
        if agent.wait_line(r"agent .* ready", 60) is None:
            raise RuntimeError(f"agent did not start:\n{agent.text()[-2000:]}")
        t0 = time.monotonic()
        # outages spread over the first ~75% of the stream; the last quarter lets the spool drain
        gap = (0.75 * duration - outages * outage_s) / max(outages, 1)
        for i in range(outages):
            time.sleep(max(0.5, gap))
            down = time.monotonic() - t0
            broker.stop()
            time.sleep(outage_s)
            broker.start()
            schedule.append({"down_at_s": round(down, 2), "up_at_s": round(time.monotonic() - t0, 2)})
            log(f"outage {i + 1}/{outages}: broker down {down:.1f}-{time.monotonic() - t0:.1f} s")
        agent.proc.wait(duration * 2 + 60)
        code = agent.stop()
        produced, _ = read_jsonl(folder / "produced.jsonl")
        want = {(a["event_id"], a["phase"]) for a in produced}
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not want <= {(a["event_id"], a["phase"]) for a in sub.snapshot()}:
            time.sleep(0.1)
        time.sleep(1.0)  # late duplicates, if any
    finally:
        # each step on its own: one failing must not leave a broker or an agent running
        for step in (agent.stop, broker.stop, sub.stop, watcher.stop):
            try:
                step()
            except Exception as exc:  # noqa: BLE001 - report and go on cleaning up
                log(f"cleanup: {step.__qualname__} failed: {exc}")
    return summarize(produced, sub.snapshot(), watcher, agent.text(), code, schedule, duration)


def summarize(produced: list[dict[str, Any]], received: list[dict[str, Any]],
              watcher: SpoolWatcher, log_text: str, code: int, schedule: list[dict[str, Any]],
              duration: float) -> dict[str, Any]:
    keys = [(a["event_id"], a["phase"]) for a in produced]
    got = [(a["event_id"], a["phase"]) for a in received]
    first_seen = list(dict.fromkeys(got))
    lost = [k for k in keys if k not in set(got)]
    unexpected = [k for k in first_seen if k not in set(keys)]
    left = [line for line in log_text.splitlines() if "left in the spool" in line]
    stopped = [line for line in log_text.splitlines() if "stopped:" in line]
    return {"produced": len(keys), "produced_distinct": len(set(keys)), "delivered_distinct": len(first_seen),
            "deliveries": len(got), "duplicates": len(got) - len(first_seen), "lost": len(lost),
            "lost_keys": lost[:20], "unexpected": len(unexpected),
            "in_order": [k for k in first_seen if k in set(keys)] == [k for k in keys if k in set(got)],
            "spool_peak_polled": watcher.peak, "spool_polls": watcher.samples,
            "spool_peak_health": watcher.health_peak,
            "reconnects": ((watcher.last_health or {}).get("sink") or {}).get("reconnects"),
            "agent_exit_code": code, "agent_log_spool": left[-1:] if left else [],
            "agent_log_stopped": stopped[-1:] if stopped else [], "outages": schedule,
            "stream_s": duration, "opens": sum(1 for a in produced if a["phase"] == "open")}


def main(outages: int, outage_s: float, n_rows: int, speed: float) -> dict[str, Any]:
    from benchmarks.reference import reference_bundles, reference_run

    run_dir = reference_run("ref_w128", window=128, hop=32, rows=60000, epochs=10)
    bundle = reference_bundles(run_dir)["auto"]["path"]
    with tempfile.TemporaryDirectory(prefix="vigil-reliability-") as tmp:
        result = run_once(Path(tmp), bundle, outages, outage_s, n_rows, speed)
    data = {"bundle": bundle, "outages_requested": outages, "outage_s": outage_s, "n_rows": n_rows,
            "speed": speed, "result": result}
    write_results("reliability", data, render(data), COMMAND)
    return data


def render(data: dict[str, Any]) -> str:
    r = data["result"]
    table = md_table(["alerts produced", "delivered (distinct)", "lost", "duplicates delivered", "in order",
                      "spool peak (polled)", "spool peak (health)", "broker outages", "agent reconnects", "agent exit"],
                     [(r["produced"], r["delivered_distinct"], r["lost"], r["duplicates"], r["in_order"],
                       r["spool_peak_polled"], r["spool_peak_health"], len(r["outages"]), r["reconnects"],
                       r["agent_exit_code"])])
    outs = ", ".join(f"{o['down_at_s']}-{o['up_at_s']} s" for o in r["outages"])
    return (table + f"\n\nStream: synthetic 3-axis with faults, {data['n_rows']:,} rows at {data['speed']:g} x 1 kHz "
            f"({r['stream_s']:.0f} s), {r['opens']} events opened. Broker down at {outs} (after the agent's ready "
            f"line). Agent log: {' '.join(r['agent_log_spool'] + r['agent_log_stopped'])}\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outages", type=int, default=4)
    parser.add_argument("--outage", type=float, default=4.0, help="seconds the broker stays down")
    parser.add_argument("--rows", type=int, default=240000)
    parser.add_argument("--speed", type=float, default=4.0)
    args = parser.parse_args()
    main(args.outages, args.outage, args.rows, args.speed)
