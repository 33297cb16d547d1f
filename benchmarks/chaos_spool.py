"""Chaos part 1b: the spool's file fails - disk full with the broker down, read-only or corrupt at start, damaged WAL.

A full or read-only filesystem is a real 512 KiB tmpfs the suite mounts when it
runs as root (CI does); otherwise those scenarios are skipped with the reason.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmarks.chaos_delivery import DEVICE, TOPIC, _sink, alert, ledger, wait_until
from edge_agent.spool import AlertSpool
from tests.broker import MosquittoBroker
from tests.test_mqtt_sink import Observer


@contextmanager
def small_fs(folder: Path) -> Iterator[Path | str]:
    """A mounted 512 KiB tmpfs, or the reason there is none."""
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        yield "needs root to mount a small filesystem"
        return
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(folder)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        yield f"cannot mount a tmpfs: {done.stderr.strip()}"
        return
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def fill(folder: Path) -> Path:
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError:
        pass
    finally:
        os.close(fd)
    return filler


def skipped(name: str, reason: str) -> dict[str, Any]:
    return {"scenario": name, "skipped": reason}


def disk_full_broker_down(work: Path, n: int = 120) -> dict[str, Any]:
    name = "disk full, broker down"
    started = time.monotonic()
    with small_fs(work / "fs") as fs:
        if isinstance(fs, str):
            return skipped(name, fs)
        b = MosquittoBroker(work / "broker", persistence=True).start()
        observer = Observer(b.port, TOPIC, persistent_id="chaos-disk-full")
        spool_path = fs / "spool.db"
        sink = _sink(b.port, AlertSpool(spool_path, max_memory=50, retry_s=0.0))
        produced: set[str] = set()
        try:
            b.stop()
            sink.start()
            filler = fill(fs)
            for i in range(n):
                payload = alert(i, 4)
                sink.publish_alert(payload)
                produced.add(payload["event_id"])
            degraded = sink.stats()["spool_degraded"]
            filler.unlink()
            b.start()
            wait_until(lambda: sink.stats()["spool_depth"] == 0, 30)
            wait_until(lambda: len({a.get("event_id") for a in observer.alerts()} & produced)
                       + sink.stats()["spool_dropped"] >= n, 20)
        finally:
            sink.stop(2)
            sink.spool.close()
            observer.close()
            b.stop()
        return ledger(name, produced, observer, spool_path, started, degraded_while_full=degraded)


def _deliver_through(spool: AlertSpool, work: Path, name: str, tag: int, started: float,
                     **extra: Any) -> dict[str, Any]:
    b = MosquittoBroker(work / "broker").start()
    observer = Observer(b.port, TOPIC)
    sink = _sink(b.port, spool)
    produced: set[str] = set()
    try:
        sink.start()
        for i in range(10):
            payload = alert(i, tag)
            sink.publish_alert(payload)
            produced.add(payload["event_id"])
        wait_until(lambda: produced <= {a.get("event_id") for a in observer.alerts()}, 20)
        stats = sink.stats()
    finally:
        sink.stop(2)
        observer.close()
        b.stop()
    spool.close()
    return ledger(name, produced, observer, None, started, spool_degraded=stats["spool_degraded"],
                  quarantined=stats["spool_quarantined"], **extra)


def read_only_spool_at_start(work: Path) -> dict[str, Any]:
    name = "read-only spool at start"
    started = time.monotonic()
    with small_fs(work / "fs") as fs:
        if isinstance(fs, str):
            return skipped(name, fs)
        with AlertSpool(fs / "spool.db"):
            pass
        subprocess.run(["mount", "-o", "remount,ro", str(fs)], check=True)
        try:
            spool = AlertSpool(fs / "spool.db", retry_s=3600)
            return _deliver_through(spool, work, name, 5, started)
        finally:
            subprocess.run(["mount", "-o", "remount,rw", str(fs)], check=False)


def corrupt_spool_at_start(work: Path) -> dict[str, Any]:
    path = work / "state" / "spool.db"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"flash card lost a block\n" * 100)
    return _deliver_through(AlertSpool(path), work, "corrupt spool at start", 6, time.monotonic())


def damaged_wal(work: Path, n: int = 116) -> dict[str, Any]:
    """n alerts spooled with the broker down, a power cut, then the WAL truncated: lost must be counted."""
    started = time.monotonic()
    live = work / "live" / "spool.db"
    spool = AlertSpool(live)
    produced = set()
    for i in range(n):
        payload = alert(i, 7)
        spool.append(TOPIC, payload)
        produced.add(payload["event_id"])
    crash = work / "crash"
    crash.mkdir()
    for suffix in ("", "-wal", ".hwm"):
        shutil.copy(live.with_name(live.name + suffix), crash / f"spool.db{suffix}")
    spool.close()
    wal = crash / "spool.db-wal"
    wal.write_bytes(wal.read_bytes()[: wal.stat().st_size // 3])
    reopened = AlertSpool(crash / "spool.db")
    survived = {m.payload_dict()["event_id"] for m in reopened.pending(100_000)}
    reopened.close()
    # "delivered" here = still in the spool for delivery; the rest must show up in counted_lost.
    result = ledger("damaged WAL (truncated)", produced, None, crash / "spool.db", started)
    result["delivered"] = len(survived)
    result["kept_in_spool"] = 0
    result["lost_uncounted"] = max(0, len(produced) - len(survived) - result["counted_lost"])
    return result


__all__ = ["DEVICE", "corrupt_spool_at_start", "damaged_wal", "disk_full_broker_down", "read_only_spool_at_start"]
