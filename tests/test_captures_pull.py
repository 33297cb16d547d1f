"""`vigil captures pull` fetches an agent's captures over a real mosquitto (chunked, checked, idempotent)."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_agent import capture_protocol as P
from edge_agent.captures import read_capture
from tests.broker import MosquittoBroker, require_mosquitto
from tests.test_agent_broker import mqtt_section, start_agent, stop
from tests.test_agent_service import agent_toml, vigil, write_anomalous_csv
from tests.test_homeassistant import Recorder

DEVICE = "test-dev"


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[MosquittoBroker]:
    """A started anonymous mosquitto (tests.broker's ``broker``, named so ruff needs no per-file ignore)."""
    require_mosquitto()
    with MosquittoBroker(tmp_path / "mosquitto") as started:
        yield started


def test_protocol_chunks_reassemble_and_refuse_damage() -> None:
    data = bytes(range(256)) * 500  # 128000 bytes: three chunks
    messages = list(P.chunk_messages("r1", "cap", "cap.npy", data))
    assert [m["data"] for m in P.chunk_messages("r2", "e", "e.json", b"")] == [""]  # an empty file: one chunk
    assert len(messages) == 3 and all(len(json.dumps(m)) < 70_000 for m in messages)
    assembly = P.FileAssembly(3, len(data), messages[0]["sha256"])
    for m in reversed(messages + messages[:1]):  # any order, a duplicate
        assembly.add(m)
    assert assembly.complete and assembly.data() == data
    assembly.parts[1] = b"x" + assembly.parts[1][1:]
    with pytest.raises(ValueError, match="SHA-256"):
        assembly.data()
    for bad in (b"{}", b"[]", b"not json", b'{"request_id": "a/b", "op": "list"}',
                b'{"request_id": "r", "op": "get", "name": "../../etc/passwd"}', b'{"request_id": "r", "op": "rm"}'):
        with pytest.raises(ValueError):
            P.parse_request(bad)
    assert P.parse_request(b'{"request_id": "r-1", "op": "get", "name": "20261201T1_ab"}') == (
        "r-1", "get", "20261201T1_ab")


def wait_for(condition, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


@pytest.mark.slow  # uses the converted tiny bundle
def test_pull_fetches_every_capture_byte_for_byte(tmp_path: Path, tiny_bundle_3f: Path,
                                                  mosquitto: MosquittoBroker) -> None:
    # Three disturbances early, then a long calm tail: the agent stays up (and quiet) while we pull.
    write_anomalous_csv(tmp_path / "data.csv", n_rows=30000, ranges=[(300, 340), (800, 830), (1300, 1330)])
    config = agent_toml(tmp_path, tiny_bundle_3f,
                        source='kind = "replay"\npath = "data.csv"\npace = "realtime"\nrate_hz = 100.0\n'
                               'speed = 10.0\n',
                        sections=mqtt_section(mosquitto.port, "[captures]\nenabled = true\nbefore_s = 2.0\n"
                                                           "after_s = 1.0\nmax_count = 2\n[health]\n"
                                                           "interval_s = 0.2\n"))
    device_dir = tmp_path / "state" / "captures"
    proc = start_agent(config, tmp_path / "agent.log")
    try:
        def written() -> int:
            health = [line for line in (tmp_path / "agent.log").read_text().splitlines() if "captures: wrote" in line]
            return len(health)

        assert wait_for(lambda: written() >= 3), (tmp_path / "agent.log").read_text()
        assert len(list(device_dir.glob("*.json"))) == 2  # max_count: the oldest was dropped
        # A malformed request gets an error reply, nothing else happens.
        replies = Recorder(mosquitto.port, P.reply_topic(f"vigil/{DEVICE}"))
        try:
            replies.client.publish(P.request_topic(f"vigil/{DEVICE}"),
                                   json.dumps({"request_id": "bad1", "op": "get", "name": "../spool.db"}), qos=1)
            assert replies.wait(lambda: replies.on("/captures"))
            assert "not a capture name" in json.loads(replies.on("/captures")[0][1])["error"]
        finally:
            replies.close()
        out = tmp_path / "pulled"
        first = vigil("captures", "pull", "--host", "127.0.0.1", "--port", str(mosquitto.port), "--device", DEVICE,
                      "--out", str(out), "--timeout", "20")
        assert first.returncode == 0, first.stderr + first.stdout
        pulled = sorted(p.name for p in out.iterdir())
        assert pulled == sorted(p.name for p in device_dir.iterdir()) and len(pulled) == 4
        assert first.stdout.count("pulled ") == 2
        for name in pulled:
            assert (out / name).read_bytes() == (device_dir / name).read_bytes(), name
        values, side = read_capture(out / pulled[0])
        assert values.shape == (side["rows"]["count"], 3) and side["device_id"] == DEVICE
        again = vigil("captures", "pull", "--host", "127.0.0.1", "--port", str(mosquitto.port), "--device", DEVICE,
                      "--out", str(out), "--timeout", "20")
        assert again.returncode == 0, again.stderr
        assert "0 to fetch" in again.stdout and "pulled " not in again.stdout
        assert stop(proc, signal.SIGTERM) == 0
        missing = vigil("captures", "pull", "--host", "127.0.0.1", "--port", str(mosquitto.port), "--device", DEVICE,
                        "--out", str(out), "--timeout", "1")
        assert missing.returncode != 0 and "no answer" in missing.stderr and "Traceback" not in missing.stderr
    finally:
        if proc.poll() is None:
            proc.kill()
