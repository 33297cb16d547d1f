"""AlertSpool: order, ack, bounds with a persisted drop counter, reopen, kill -9."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edge_agent.spool import AlertSpool


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_pending_in_seq_order_and_ack_removes(tmp_path: Path) -> None:
    spool = AlertSpool(tmp_path / "spool.db")
    original = {"event_id": "a", "n": 1}
    seqs = [spool.append("vigil/d/alert", {**original, "n": i}) for i in range(5)]
    assert seqs == [1, 2, 3, 4, 5]
    assert "seq" not in original  # the caller's dict is left alone
    msgs = spool.pending(10)
    assert [m.seq for m in msgs] == seqs
    assert [m.payload_dict() for m in msgs] == [{"event_id": "a", "n": i, "seq": s} for i, s in enumerate(seqs)]
    assert all(m.topic == "vigil/d/alert" for m in msgs)
    assert [m.seq for m in spool.pending(2, after=2)] == [3, 4]

    assert spool.ack(2) is True
    assert spool.ack(2) is False
    assert [m.seq for m in spool.pending(10)] == [1, 3, 4, 5]
    assert spool.depth() == 4
    spool.mark_attempt([1, 3])
    assert {m.seq: m.attempts for m in spool.pending(10)} == {1: 1, 3: 1, 4: 0, 5: 0}


def test_bound_by_count_drops_oldest_and_counter_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    spool = AlertSpool(path, max_messages=3)
    for i in range(5):
        spool.append("t", {"i": i})
    assert [m.payload_dict()["i"] for m in spool.pending(10)] == [2, 3, 4]
    assert spool.dropped == 2
    spool.close()

    reopened = AlertSpool(path, max_messages=3)
    assert reopened.dropped == 2
    assert reopened.depth() == 3
    reopened.append("t", {"i": 5})
    assert reopened.dropped == 3
    assert [m.seq for m in reopened.pending(10)] == [4, 5, 6]


def test_bound_by_age_drops_old_messages(tmp_path: Path) -> None:
    clock = FakeClock(1000.0)
    spool = AlertSpool(tmp_path / "spool.db", max_age_s=100.0, clock=clock)
    spool.append("t", {"i": 0})
    clock.now = 1050.0
    spool.append("t", {"i": 1})
    clock.now = 1120.0  # the first one is now 120 s old
    assert spool.prune() == 1
    assert [m.payload_dict()["i"] for m in spool.pending(10)] == [1]
    clock.now = 1200.0
    spool.append("t", {"i": 2})  # append applies the age bound too
    assert [m.payload_dict()["i"] for m in spool.pending(10)] == [2]
    assert spool.dropped == 2


def test_reopen_keeps_rows_and_seq_never_reused(tmp_path: Path) -> None:
    path = tmp_path / "state" / "spool.db"  # parent directory is created
    with AlertSpool(path) as spool:
        for i in range(3):
            spool.append("t", {"i": i})
        spool.ack(3)
    with AlertSpool(path) as spool:
        assert [m.seq for m in spool.pending(10)] == [1, 2]
        spool.ack(1)
        spool.ack(2)
        assert spool.append("t", {"i": 9}) == 4  # AUTOINCREMENT: 3 is not handed out again
    mode = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_payload_that_is_not_json_is_rejected_before_writing(tmp_path: Path) -> None:
    spool = AlertSpool(tmp_path / "spool.db")
    with pytest.raises(ValueError):
        spool.append("t", {"peak_score": float("nan")})
    assert spool.depth() == 0


_WRITER = """
import sys
from edge_agent.spool import AlertSpool
spool = AlertSpool(sys.argv[1])
i = 0
while True:
    seq = spool.append("vigil/d/alert", {"i": i, "pad": "x" * 200})
    print(seq, flush=True)  # printed only after append returned: committed
    i += 1
"""


def test_kill_9_of_a_writer_loses_no_committed_row(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(path)], stdout=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parents[1])
    committed: list[int] = []
    deadline = time.monotonic() + 30
    assert proc.stdout is not None
    while len(committed) < 40 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        committed.append(int(line))
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert len(committed) >= 40, "writer did not get going"

    spool = AlertSpool(path)  # opens (and quick_checks) cleanly after the kill
    stored = {m.seq: m.payload_dict() for m in spool.pending(100000)}
    assert set(committed) <= set(stored)
    assert [stored[s]["i"] for s in committed] == list(range(len(committed)))
    assert sorted(stored) == list(range(1, len(stored) + 1))  # no holes, in order


# -- the local sinks (the no-broker default): durable file, readable stdout ------------------


def test_jsonl_sink_appends_one_json_line_per_alert_and_health_beside_it(tmp_path: Path) -> None:
    from edge_agent.sinks.jsonl import JsonlSink

    path = tmp_path / "out" / "events.jsonl"
    for run in range(2):  # a second run appends, it does not truncate
        sink = JsonlSink(path)
        sink.start()
        sink.publish_alert({"event_id": f"e{run}", "phase": "open"})
        sink.publish_health({"uptime_s": run})
        assert sink.stats() == {"alerts_written": 1, "health_reports": 1}
        sink.stop()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines == [{"event_id": "e0", "phase": "open"}, {"event_id": "e1", "phase": "open"}]
    assert json.loads((tmp_path / "out" / "events.health.json").read_text()) == {"uptime_s": 1}

    quiet = JsonlSink(tmp_path / "q.jsonl", write_health=False)
    quiet.publish_health({"uptime_s": 5})
    assert not (tmp_path / "q.health.json").exists()


def test_stdout_sink_prints_one_line_per_alert(tmp_path: Path) -> None:
    import io

    from edge_agent.sinks.stdout import StdoutSink

    payload = {"event_id": "ab" * 16, "phase": "close", "device_id": "pi-1", "end": "2026-11-23T08:00:00.000Z",
               "peak_score": 0.123456, "threshold": 0.05, "window_count": 4, "seq": 7,
               "top_features": [{"feature": "ax", "share": 0.7}, {"feature": "ay", "share": 0.3}]}
    stream = io.StringIO()
    sink = StdoutSink(stream)
    sink.publish_alert(payload)
    sink.publish_health({"uptime_s": 1})  # not shown by default
    assert stream.getvalue() == (
        "ALERT 2026-11-23T08:00:00.000Z pi-1 CLOSE event abababab seq 7 peak 0.1235 (thr 0.05) windows 4 top "
            "ax:0.70,ay:0.30\n"
    )
    as_json = io.StringIO()
    StdoutSink(as_json, as_json=True).publish_alert(payload)
    assert json.loads(as_json.getvalue()) == payload
