"""The spool under real file faults: full disk, read-only filesystem, corrupt file, damaged WAL.

Full and read-only filesystems are real: a small tmpfs mounted by the test.
That needs root, as CI and the development machines run; elsewhere these tests
fail and say why (never a silent skip).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.chaos_spool import fill
from benchmarks.chaos_spool import small_fs as mounted_small_fs
from edge_agent.spool import AlertSpool


@pytest.fixture()
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 512 KiB tmpfs at tmp_path/fs (the chaos suite's own mount), unmounted afterwards."""
    with mounted_small_fs(tmp_path / "fs") as mount:
        if isinstance(mount, str):
            pytest.fail(f"{mount} (CI runs as root); run the suite as root")
        yield mount


def _alert(i: int) -> dict[str, object]:
    return {"event_id": f"e{i}", "phase": "open", "i": i, "pad": "x" * 300}


def test_disk_full_keeps_alerts_in_memory_in_order_and_counts_what_is_dropped(small_fs: Path) -> None:
    spool = AlertSpool(small_fs / "spool.db", max_memory=25, retry_s=0.0)
    for i in range(5):
        spool.append("t", _alert(i))
    filler = fill(small_fs)
    seqs = [spool.append("t", _alert(i)) for i in range(5, 80)]
    assert seqs == list(range(6, 81))  # no seq reused or skipped while the disk is full
    stats = spool.stats()
    assert "full" in stats["degraded"] and stats["write_errors"] > 0
    assert stats["memory_depth"] == 25
    pending = spool.pending(1000)
    assert [m.seq for m in pending] == sorted(m.seq for m in pending)  # file rows and memory, one order
    assert len(pending) + stats["dropped"] == 80  # every alert is either still here or counted
    assert pending[-1].seq == 80 and pending[-1].payload_dict()["i"] == 79
    assert spool.dropped == stats["dropped"] > 0

    filler.unlink()  # space again: the next append moves the memory queue back into the file
    spool.append("t", _alert(80))
    after = spool.stats()
    assert after["memory_depth"] == 0 and after["degraded"] == ""
    held = [m.seq for m in spool.pending(1000)]
    spool.close()
    reopened = AlertSpool(small_fs / "spool.db")
    assert [m.seq for m in reopened.pending(1000)] == held  # durable now, same order
    assert reopened.dropped == stats["dropped"]  # the drop count survived the restart
    assert reopened.stats()["lost"] == 0


def test_read_only_filesystem_at_start_runs_memory_only_and_recovers(small_fs: Path) -> None:
    path = small_fs / "state" / "spool.db"
    with AlertSpool(path) as spool:
        spool.append("t", _alert(0))
    subprocess.run(["mount", "-o", "remount,ro", str(small_fs)], check=True)
    try:
        spool = AlertSpool(path, retry_s=0.0)  # must not raise: the agent keeps scoring
        assert "read" in spool.stats()["degraded"].lower() or "open" in spool.stats()["degraded"]
        seqs = [spool.append("t", _alert(i)) for i in (1, 2)]
        assert seqs == [2, 3]  # continues above the high-water mark, never reusing seq 1
        assert [m.seq for m in spool.pending(10)] == [2, 3]
        assert spool.ack(2) and spool.stats()["memory_depth"] == 1
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(small_fs)], check=True)
    spool.append("t", _alert(3))  # retry succeeds: the file is back, memory goes into it
    assert spool.stats()["degraded"] == "" and spool.stats()["memory_depth"] == 0
    assert [m.seq for m in spool.pending(10)] == [1, 3, 4]
    spool.close()


def test_unwritable_spool_directory_is_memory_only_until_it_can_be_made(tmp_path: Path) -> None:
    blocker = tmp_path / "state"
    blocker.write_text("a file where the spool directory should be")
    spool = AlertSpool(blocker / "spool.db", retry_s=0.0)
    assert "cannot create spool directory" in spool.stats()["degraded"]
    assert spool.append("t", _alert(0)) == 1 and spool.depth() == 1
    blocker.unlink()
    spool.append("t", _alert(1))
    assert spool.stats()["degraded"] == "" and spool.stats()["memory_depth"] == 0
    assert [m.payload_dict()["i"] for m in spool.pending(10)] == [0, 1]
    assert (blocker / "spool.db").exists()


def test_corrupt_spool_at_start_is_moved_aside_and_a_new_one_opened(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    with AlertSpool(path) as spool:
        for i in range(3):
            spool.append("t", _alert(i))
    path.write_bytes(b"this is not sqlite\n" * 200)  # e.g. a flash card that lost a block
    spool = AlertSpool(path)
    stats = spool.stats()
    assert stats["quarantined"] == 1 and stats["degraded"] == ""
    assert stats["lost"] == 3  # the high-water mark knows three alerts were in it
    aside = list(tmp_path.glob("spool.db.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_bytes().startswith(b"this is not sqlite")
    assert spool.append("t", _alert(3)) == 4  # seq continues: subscribers do not see a "duplicate"
    spool.close()


def _snapshot_with_alerts(tmp_path: Path, n: int) -> tuple[Path, Path]:
    """Spool ``n`` alerts (broker down), then copy the files as a power cut would leave them."""
    live = tmp_path / "live" / "spool.db"
    spool = AlertSpool(live)
    for i in range(n):
        spool.append("t", _alert(i))
    crash = tmp_path / "crash"
    crash.mkdir()
    for name in ("spool.db", "spool.db-wal", "spool.db.hwm"):
        shutil.copy(live.with_name(name), crash / name)
    spool.close()
    return crash / "spool.db", crash / "spool.db-wal"


@pytest.mark.parametrize("damage", ["truncated", "bit-flipped"])
def test_damaged_wal_is_detected_and_the_lost_alerts_counted(tmp_path: Path, damage: str,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    path, wal = _snapshot_with_alerts(tmp_path, 116)
    data = bytearray(wal.read_bytes())
    if damage == "truncated":
        data = data[: len(data) // 3]
    else:
        data[len(data) // 2] ^= 0x40
    wal.write_bytes(bytes(data))
    spool = AlertSpool(path)
    kept = spool.depth()
    assert kept < 116  # SQLite silently drops the damaged frames ...
    assert spool.stats()["lost"] == 116 - kept  # ... and the high-water mark counts them
    assert any("missing" in r.message and "lost" in r.message for r in caplog.records)
    assert spool.append("t", _alert(116)) == 117
    spool.close()
    assert AlertSpool(path).stats()["lost"] == 116 - kept  # persisted: health keeps saying it


def test_acked_alerts_are_not_counted_as_lost_after_a_crash(tmp_path: Path) -> None:
    path, _ = _snapshot_with_alerts(tmp_path, 0)
    spool = AlertSpool(path)
    for i in range(10):
        spool.ack(spool.append("t", _alert(i)))
    spool.append("t", _alert(10))
    spool.close()
    reopened = AlertSpool(path)
    assert reopened.stats()["lost"] == 0 and reopened.depth() == 1


@pytest.mark.broker
def test_disk_full_with_the_broker_down_loses_nothing_uncounted(small_fs: Path, tmp_path: Path) -> None:
    from edge_agent.mqtt.settings import MqttSettings
    from edge_agent.mqtt.sink import MqttSink
    from tests.broker import MosquittoBroker, require_mosquitto
    from tests.test_mqtt_sink import FAST, Observer, make_alert, wait_for

    require_mosquitto()
    b = MosquittoBroker(tmp_path / "b", persistence=True).start()
    observer = Observer(b.port, "vigil/dev1/#", persistent_id="disk-full-observer")
    sink = MqttSink(MqttSettings(host="127.0.0.1", port=b.port, **FAST), "dev1",
                    AlertSpool(small_fs / "spool.db", max_memory=30, retry_s=0.0))
    try:
        b.stop()
        sink.start()
        for i in range(5):
            sink.publish_alert(make_alert(i))
        filler = fill(small_fs)
        for i in range(5, 65):
            sink.publish_alert(make_alert(i))
        stats = sink.stats()
        assert "full" in stats["spool_degraded"] and stats["spool_memory_depth"] == 30
        assert stats["spool_dropped"] > 0 and stats["spool_depth"] + stats["spool_dropped"] == 65
        filler.unlink()
        b.start()
        wait_for(lambda: sink.stats()["spool_depth"] == 0, 30, "spool drained after the outage")
        wait_for(lambda: len({a["seq"] for a in observer.alerts()}) >= 65 - stats["spool_dropped"], 30,
                 "the observer's queued alerts")
        delivered = list(dict.fromkeys(a["seq"] for a in observer.alerts()))
        assert delivered == sorted(delivered)  # memory-held alerts went out in order with the rest
        assert len(delivered) + stats["spool_dropped"] == 65  # lost-and-uncounted: 0
        assert sink.stats()["spool_degraded"] == ""
        wait_for(lambda: observer.payloads("/status")[-1:] == ["online"], 10, "status back to plain online")
    finally:
        sink.stop()
        observer.close()
        b.stop()


def test_alert_acked_while_the_disk_is_full_is_not_sent_again(small_fs: Path) -> None:
    spool = AlertSpool(small_fs / "spool.db", retry_s=0.0)
    seqs = [spool.append("t", _alert(i)) for i in range(5)]
    filler = fill(small_fs)
    for seq in seqs[:3]:
        assert spool.ack(seq)  # delivered: even if the DELETE must wait for space
    assert [m.seq for m in spool.pending(10)] == seqs[3:] and spool.depth() == 2
    filler.unlink()
    spool.append("t", _alert(5))  # space again: the deferred deletes go through
    spool.close()
    assert [m.seq for m in AlertSpool(small_fs / "spool.db").pending(10)] == [4, 5, 6]


@pytest.mark.broker
def test_status_topic_says_degraded_while_the_disk_is_full_and_plain_online_after(small_fs: Path,
                                                                                  tmp_path: Path) -> None:
    from edge_agent.mqtt.settings import MqttSettings
    from edge_agent.mqtt.sink import MqttSink
    from tests.broker import MosquittoBroker, require_mosquitto
    from tests.test_mqtt_sink import FAST, Observer, make_alert, wait_for

    require_mosquitto()
    with MosquittoBroker(tmp_path / "b") as b:
        observer = Observer(b.port, "vigil/dev1/#")
        sink = MqttSink(MqttSettings(host="127.0.0.1", port=b.port, **FAST), "dev1",
                        AlertSpool(small_fs / "spool.db", retry_s=0.0))
        sink.start()
        try:
            sink.publish_alert(make_alert(0))
            wait_for(lambda: observer.payloads("/status")[-1:] == ["online"], 10, "plain online first")
            filler = fill(small_fs)
            for i in range(1, 40):  # until the full disk refuses a write
                sink.publish_alert(make_alert(i))
                if sink.stats()["spool_degraded"]:
                    break
            assert "full" in sink.stats()["spool_degraded"]
            wait_for(lambda: any(p.startswith("online degraded: ") and "full" in p
                                 for p in observer.payloads("/status")), 10, "the degraded status")
            filler.unlink()
            sink.publish_alert(make_alert(99))
            wait_for(lambda: observer.payloads("/status")[-1:] == ["online"], 10, "plain online again")
            wait_for(lambda: sink.stats()["spool_depth"] == 0, 20, "every alert delivered")
            assert sink.stats()["spool_dropped"] == 0
        finally:
            sink.stop(1)
            observer.close()


def test_alerts_held_only_in_memory_at_stop_are_stored_if_possible_else_counted(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "state"
    blocker.write_text("a file where the spool directory should be")
    spool = AlertSpool(blocker / "spool.db", retry_s=3600.0)  # no retry before the stop
    for i in range(3):
        spool.append("t", _alert(i))
    spool.close()  # the directory is still unusable: the three die with the process ...
    assert spool.stats()["dropped"] == 3 and spool.stats()["memory_depth"] == 0  # ... and are counted
    assert any("held only in memory" in r.message and "lost" in r.message for r in caplog.records)

    spool = AlertSpool(blocker / "spool.db", retry_s=3600.0)
    spool.append("t", _alert(3))
    blocker.unlink()  # the directory can be made now: the stop stores what memory holds
    spool.close()
    assert spool.stats()["dropped"] == 0
    assert [m.payload_dict()["i"] for m in AlertSpool(blocker / "spool.db").pending(10)] == [3]


@pytest.mark.slow  # uses the converted tiny bundle
def test_agent_with_an_unusable_state_directory_still_scores_and_says_why(tmp_path: Path,
                                                                          tiny_bundle_3f: Path) -> None:
    # Defect 2 at the agent level: the spool, the open-event file and the rollout state all live in the
    # state directory; none of them may stop the agent (exit 1 with a traceback was a restart loop).
    import json

    from tests.broker import free_port
    from tests.test_agent_service import agent_toml, read_jsonl, vigil, write_anomalous_csv

    write_anomalous_csv(tmp_path / "data.csv")
    (tmp_path / "state").write_text("a file where the state directory should be")
    config = agent_toml(tmp_path, tiny_bundle_3f, source='kind = "replay"\npath = "data.csv"\npace = "fast"\n',
                        sections=f'[mqtt]\nhost = "127.0.0.1"\nport = {free_port()}\n[spool]\n'
                                 'path = "state/spool.db"\n[sinks]\njsonl = "alerts.jsonl"\nhealth_jsonl = true\n')
    result = vigil("agent", "run", "--config", str(config))
    assert result.returncode == 0, (result.stdout + result.stderr)[-2000:]
    log = result.stdout + result.stderr
    assert "Traceback" not in log
    assert read_jsonl(tmp_path / "alerts.jsonl"), "no alerts scored"
    health = json.loads((tmp_path / "alerts.health.json").read_text())
    assert "cannot create spool directory" in health["sink"]["spool_degraded"]
    assert "rollout: cannot use" in log and "held only in memory" in log
