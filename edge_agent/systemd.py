"""systemd ``Type=notify`` support without libsystemd: plain datagrams to ``$NOTIFY_SOCKET``.

The protocol is one ``AF_UNIX`` datagram per message with newline-separated
``KEY=VALUE`` lines (``READY=1``, ``WATCHDOG=1``, ``STOPPING=1``, ``STATUS=...``).
A socket path starting with ``@`` is in the abstract namespace (leading NUL).
Outside systemd (no ``NOTIFY_SOCKET``) every call is a no-op, so the agent runs
the same under a shell, a test or a unit.

Watchdog pings are sent from the agent's main loop on purpose: if the loop
hangs (stuck sensor read, deadlocked sink), pings stop and systemd restarts the
service, which a background ping thread would hide.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping


def _socket_address(raw: str) -> str | bytes:
    if raw.startswith("@"):
        # Abstract namespace: the name is the rest, prefixed by a NUL byte.
        return b"\0" + raw[1:].encode()
    return raw


def watchdog_interval(env: Mapping[str, str] | None = None) -> float | None:
    """Seconds between pings (half of ``WATCHDOG_USEC``), or None when no watchdog is set.

    ``WATCHDOG_PID``, when present, must be this process: a child started by the
    service must not ping on its behalf.
    """
    env = os.environ if env is None else env
    usec = env.get("WATCHDOG_USEC", "")
    pid = env.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) <= 0:
        return None
    if pid and (not pid.isdigit() or int(pid) != os.getpid()):
        return None
    return int(usec) / 2e6


class SystemdNotifier:
    """Send sd_notify messages; silently disabled when not run by systemd."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        raw = env.get("NOTIFY_SOCKET", "")
        self.address: str | bytes | None = _socket_address(raw) if raw else None
        self.watchdog_s = watchdog_interval(env)
        self._sock: socket.socket | None = None
        self._last_ping = float("-inf")
        self.errors = 0

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, *lines: str) -> bool:
        """Send one datagram; False when disabled or the send failed (never raises)."""
        if self.address is None:
            return False
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            # Non-blocking: a notify socket nobody drains must not stall the main loop.
            self._sock.sendto("\n".join(lines).encode(), socket.MSG_DONTWAIT, self.address)
            return True
        except OSError:
            # A missing or full notify socket must never take the agent down.
            self.errors += 1
            return False

    def ready(self, status: str | None = None) -> bool:
        lines = ["READY=1", f"MAINPID={os.getpid()}"]
        if status:
            lines.append(f"STATUS={status}")
        return self.notify(*lines)

    def status(self, text: str) -> bool:
        return self.notify(f"STATUS={text}")

    def stopping(self, status: str | None = None) -> bool:
        lines = ["STOPPING=1"] + ([f"STATUS={status}"] if status else [])
        return self.notify(*lines)

    def watchdog(self, now: float | None = None) -> bool:
        """Ping if the watchdog is on and half its period has passed since the last ping."""
        if self.watchdog_s is None or self.address is None:
            return False
        now = time.monotonic() if now is None else now
        if now - self._last_ping < self.watchdog_s:
            return False
        self._last_ping = now
        return self.notify("WATCHDOG=1")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
