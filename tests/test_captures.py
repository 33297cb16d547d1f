"""Captures: the sample ring, the bounded capture directory, and the agent writing the rows around each alert."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edge_agent.captures import CaptureRecorder, CaptureStore, SampleRing, read_capture
from edge_agent.config import load_config
from edge_agent.errors import VigilInputError
from edge_agent.service import AgentService
from edge_agent.sources.base import SampleBlock
from tests.test_agent_service import agent_toml, read_jsonl, write_anomalous_csv


def block(first_value: int, n: int, n_features: int = 2, gap_before: int = 0) -> SampleBlock:
    values = (np.arange(first_value, first_value + n, dtype=np.float32)[:, None]
              * np.ones(n_features, dtype=np.float32))
    return SampleBlock(values, np.arange(first_value, first_value + n, dtype=np.float64) / 100.0,
                       gap_before=gap_before)


# ----------------------------------------------------------------------------- ring


def test_ring_keeps_the_newest_rows_across_wraps() -> None:
    ring = SampleRing(10, 2)
    ring.append(block(0, 7), 0)
    ring.append(block(7, 6), 7)  # wraps
    values, times, rows, valid = ring.select(0, 100)
    assert rows.tolist() == list(range(3, 13)) and ring.last_row == 12 and ring.first_row == 3
    assert values[:, 0].tolist() == list(range(3, 13)) and valid.all()
    assert np.allclose(times, np.arange(3, 13) / 100.0)
    assert ring.select(5, 8)[2].tolist() == [5, 6, 7]


def test_ring_takes_only_the_tail_of_a_block_larger_than_itself() -> None:
    ring = SampleRing(4, 1)
    ring.append(block(0, 9, 1), 100)
    assert ring.select(0, 1000)[2].tolist() == [105, 106, 107, 108]


# ----------------------------------------------------------------------------- store bounds


def test_store_drops_the_oldest_beyond_count_and_bytes(tmp_path: Path) -> None:
    store = CaptureStore(tmp_path / "caps", max_count=3, max_bytes=10**9)
    for i in range(5):
        assert store.write(f"c{i}", np.zeros((10, 2)), {"i": i})
    assert store.names() == ["c2", "c3", "c4"] and store.written == 5 and store.dropped == 2
    one = sum(store.sizes("c4").values())
    small = CaptureStore(tmp_path / "caps", max_count=100, max_bytes=2 * one + 10)
    assert small.write("c5", np.zeros((10, 2)), {"i": 5})
    assert small.names() == ["c4", "c5"] and small.dropped == 2  # room for two: c2 and c3 go
    assert small.usage()[1] <= small.max_bytes
    assert not small.write("huge", np.zeros((100_000, 2)), {}) and small.errors == 1  # larger than the bound
    assert "larger than captures.max_bytes" in (small.last_error or "")
    assert not any(p.name.startswith(".") for p in (tmp_path / "caps").iterdir())  # no temp files left


def test_recorder_writes_rows_before_and_after_and_flushes_a_partial_one(tmp_path: Path) -> None:
    store = CaptureStore(tmp_path, max_count=10, max_bytes=10**8)
    rec = CaptureRecorder(store, 2, ["a", "b"], before_s=0.05, after_s=0.1, max_rows=1000, rate_hz=100.0,
                          window=8, device_id="d", model_id="m")
    rec.on_block(block(0, 45), 0)
    rec.on_alert({"event_id": "e1", "phase": "open", "kind": "anomaly", "start_sample": 30, "end_sample": 40,
                  "peak_score": 2.0, "threshold": 1.0})
    rec.on_block(block(45, 20), 45)
    assert rec.counters()["pending"] == 1  # open: waits for the close
    rec.on_alert({"event_id": "e1", "phase": "close", "kind": "anomaly", "start_sample": 30, "end_sample": 52})
    assert rec.counters()["pending"] == 0 and store.names()  # rows up to 62 wanted, 64 held: written
    values, side = read_capture(tmp_path / store.names()[0])
    assert values[:, 0].tolist() == list(range(25, 63))  # 5 rows before the first row 30, 10 after the last 52
    assert side["rows"] == {"first": 25, "last": 62, "count": 38, "requested": [25, 62]}
    assert side["event_rows"] == [30, 52] and side["event_open"] is False
    assert side["event_id"] == "e1" and side["scores"] == {"peak_score": 2.0, "threshold": 1.0}
    assert [a["phase"] for a in side["alerts"]] == ["open", "close"] and side["truncated"] is False
    assert side["features"] == ["a", "b"] and side["rate_hz"] == 100.0
    rec.on_block(block(65, 5), 65)
    rec.on_alert({"event_id": "e2", "phase": "open", "start_sample": 66, "end_sample": 69})
    rec.flush()  # the agent stops while the event is open
    values, side = read_capture(tmp_path / store.names()[-1])
    assert side["truncated"] is True and side["event_open"] is True
    assert values[:, 0].tolist() == list(range(61, 70))  # 5 rows before 66, held up to 69


def test_an_event_open_for_max_rows_is_written_then(tmp_path: Path) -> None:
    store = CaptureStore(tmp_path, max_count=10, max_bytes=10**8)
    rec = CaptureRecorder(store, 2, ["a", "b"], before_s=0.05, after_s=0.1, max_rows=100, rate_hz=100.0,
                          window=8, device_id="d", model_id="m")
    rec.on_block(block(0, 20), 0)
    rec.on_alert({"event_id": "long", "phase": "open", "start_sample": 10, "end_sample": 12})
    for first in range(20, 200, 20):
        rec.on_block(block(first, 20), first)
    assert rec.counters()["pending"] == 0 and rec.ring is not None and rec.ring.capacity <= 100 + 20
    values, side = read_capture(tmp_path / store.names()[0])
    assert values[:, 0].tolist() == list(range(5, 105)) and side["event_open"] is True
    rec.on_alert({"event_id": "long", "phase": "close", "start_sample": 10, "end_sample": 400})
    assert len(store.names()) == 1  # its close starts no second capture


def test_read_capture_refuses_mismatched_files(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.zeros((4, 3), dtype=np.float32))
    (tmp_path / "x.json").write_text(json.dumps({"schema": "vigil.capture/1", "features": ["a", "b"]}))
    with pytest.raises(VigilInputError, match="do not match"):
        read_capture(tmp_path / "x.json")
    with pytest.raises(VigilInputError, match="missing"):
        read_capture(tmp_path / "nothing.json")


# ----------------------------------------------------------------------------- the agent


def capture_config(tmp_path: Path, bundle: Path, extra: str = "") -> Path:
    write_anomalous_csv(tmp_path / "data.csv")
    return agent_toml(tmp_path, bundle, source='kind = "replay"\npath = "data.csv"\npace = "fast"\nrate_hz = 100.0\n',
                      sections='[spool]\npath = "state/spool.db"\n[sinks]\njsonl = "alerts.jsonl"\n'
                               'health_jsonl = true\n[health]\ninterval_s = 0.05\n'
                               '[captures]\nenabled = true\nbefore_s = 0.2\nafter_s = 0.1\n' + extra)


@pytest.mark.slow  # uses the converted tiny bundle
def test_agent_writes_a_capture_per_event_with_the_raw_rows(tmp_path: Path, tiny_bundle_3f: Path) -> None:
    config = capture_config(tmp_path, tiny_bundle_3f)
    assert AgentService(load_config(config)).run() == 0
    lines = read_jsonl(tmp_path / "alerts.jsonl")
    opens = [a for a in lines if a.get("phase") == "open"]
    health = json.loads((tmp_path / "alerts.health.json").read_text())  # the last health message
    assert opens, "the anomalous replay must open events"
    store = CaptureStore(tmp_path / "state" / "captures", 100, 10**9)
    assert len(store.names()) == len(opens)
    data = np.loadtxt(tmp_path / "data.csv", delimiter=",", skiprows=1)
    for name in store.names():
        values, side = read_capture(store.folder / name)
        alert = next(a for a in opens if a["event_id"] == side["event_id"])
        first, last = side["rows"]["first"], side["rows"]["last"]
        assert first == max(0, alert["start_sample"] - 20)  # before_s 0.2 at 100 Hz
        close = next(a for a in lines if a["event_id"] == side["event_id"] and a["phase"] == "close")
        assert last == min(len(data) - 1, close["end_sample"] + 10) and side["event_open"] is False
        np.testing.assert_allclose(values, data[first:last + 1], atol=1e-5)  # the raw file rows
        assert side["features"] == ["f0", "f1", "f2"] and side["scores"]["peak_score"] == alert["peak_score"]
    assert health["captures"]["written"] == len(opens) and health["captures"]["stored"] == len(opens)
    assert health["addons"]["errors"] == 0


@pytest.mark.slow  # uses the converted tiny bundle
def test_a_capture_directory_that_cannot_be_written_is_counted_not_fatal(tmp_path: Path,
                                                                         tiny_bundle_3f: Path) -> None:
    (tmp_path / "blocked").write_text("a file where the capture directory should be")
    config = capture_config(tmp_path, tiny_bundle_3f, 'path = "blocked/caps"\n')
    assert AgentService(load_config(config)).run() == 0
    lines = read_jsonl(tmp_path / "alerts.jsonl")
    opens = [a for a in lines if a.get("phase") == "open"]
    health = json.loads((tmp_path / "alerts.health.json").read_text())
    assert opens and health["captures"]["errors"] == len(opens) and health["captures"]["written"] == 0
