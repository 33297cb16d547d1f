"""sd_notify over a real datagram socket: the notifier alone and a running agent."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import uuid
from pathlib import Path

import pytest

from edge_agent.systemd import SystemdNotifier, watchdog_interval
from tests.test_agent_service import agent_toml, vigil_argv, write_anomalous_csv


@pytest.fixture
def path_socket(tmp_path: Path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = tmp_path / "notify.sock"
    sock.bind(str(path))
    sock.settimeout(5.0)
    yield str(path), sock
    sock.close()


def receive_all(sock: socket.socket, idle: float = 0.5) -> list[str]:
    """Datagrams until ``END`` arrives or nothing comes for ``idle`` seconds."""
    sock.settimeout(idle)
    out = []
    try:
        while not out or out[-1] != "END":
            out.append(sock.recv(4096).decode())
    except (TimeoutError, BlockingIOError):
        pass
    return out


def test_notifier_sends_datagrams_to_a_path_socket(path_socket) -> None:
    address, sock = path_socket
    notifier = SystemdNotifier({"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "2000000"})
    assert notifier.enabled and notifier.watchdog_s == 1.0
    assert notifier.ready(status="loaded")
    assert notifier.watchdog(now=100.0)
    assert not notifier.watchdog(now=100.5)  # half the watchdog period has not passed
    assert notifier.watchdog(now=101.0)
    assert notifier.stopping()
    messages = receive_all(sock)
    assert messages[0].splitlines()[0] == "READY=1" and "STATUS=loaded" in messages[0]
    assert f"MAINPID={os.getpid()}" in messages[0]
    assert messages[1:] == ["WATCHDOG=1", "WATCHDOG=1", "STOPPING=1"]


def test_notifier_supports_abstract_sockets() -> None:
    name = f"vigil-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(b"\0" + name.encode())
    try:
        assert SystemdNotifier({"NOTIFY_SOCKET": "@" + name}).status("hello")
        sock.settimeout(5.0)
        assert sock.recv(4096) == b"STATUS=hello"
    finally:
        sock.close()


def test_notifier_is_a_no_op_outside_systemd(tmp_path: Path) -> None:
    quiet = SystemdNotifier({})
    assert not quiet.enabled and not quiet.ready() and not quiet.watchdog()
    broken = SystemdNotifier({"NOTIFY_SOCKET": str(tmp_path / "nobody-listens")})
    assert not broken.ready() and broken.errors == 1  # never raises


def test_watchdog_interval_respects_pid() -> None:
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "0"}) is None and watchdog_interval({}) is None


@pytest.mark.slow  # uses the converted tiny bundle
def test_agent_notifies_ready_watchdog_and_stopping(path_socket, tmp_path: Path, tiny_bundle_3f: Path) -> None:
    address, sock = path_socket
    write_anomalous_csv(tmp_path / "data.csv", n_rows=400, ranges=[])
    config = agent_toml(tmp_path, tiny_bundle_3f, source="""
        kind = "replay"
        path = "data.csv"
        pace = "realtime"
        rate_hz = 100.0
        speed = 4.0
        """, sections='[sinks]\njsonl = "alerts.jsonl"\n')
    env = {**os.environ, "NOTIFY_SOCKET": address, "WATCHDOG_USEC": "100000"}  # ping every 50 ms
    messages: list[str] = []
    # Drain while the agent runs, like systemd does (a datagram queue holds only a few).
    reader = threading.Thread(target=lambda: messages.extend(receive_all(sock, idle=30.0)), daemon=True)
    reader.start()
    result = subprocess.run(vigil_argv("agent", "run", "--config", str(config)), env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    sock.sendto(b"END", address)
    reader.join(10)
    assert messages and messages[-1] == "END"
    messages = messages[:-1]
    firsts = [m.splitlines()[0] for m in messages]
    assert firsts[0] == "READY=1", firsts
    assert firsts[-1] == "STOPPING=1"
    assert firsts.count("WATCHDOG=1") >= 2  # one second of realtime replay at a 50 ms ping period
    ready_pid = next(line for line in messages[0].splitlines() if line.startswith("MAINPID="))
    assert int(ready_pid.split("=")[1]) > 0
