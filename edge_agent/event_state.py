"""The open event's identity on disk, so a restart can close what a crash left open.

When an event opens, its open payload is written (atomically) next to the
spool; when it closes, the file is removed. An agent that starts and finds the
file was killed (``kill -9``, power loss) while the event was open: it
publishes that event's close with ``close_reason: "agent_restarted"``, so a
subscriber never keeps an event open forever and never mistakes a restart for
a cleared fault.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger("vigil.agent")

STATE_FILE = "open_events.json"


class OpenEventState:
    """``{event_id: open payload}`` of the events open right now, kept in one small JSON file."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._open: dict[str, dict[str, Any]] = {}
        self.write_errors = 0

    def leftovers(self) -> list[dict[str, Any]]:
        """Open payloads a previous run left behind (unreadable file: logged, treated as none)."""
        if self.path is None or not self.path.exists():
            return []
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError) as exc:
            log.warning("cannot read %s (%s); open events of the previous run cannot be closed", self.path, exc)
            return []
        if not isinstance(data, dict):
            return []
        return [p for p in data.values() if isinstance(p, dict) and isinstance(p.get("event_id"), str)]

    def track(self, payload: dict[str, Any]) -> None:
        """Record an open, forget a close (anomaly and sensor-fault events alike)."""
        event_id = payload.get("event_id")
        if not isinstance(event_id, str):
            return
        if payload.get("phase") == "open":
            self._open[event_id] = payload
        else:
            self._open.pop(event_id, None)
        self._write()

    def clear(self) -> None:
        self._open.clear()
        self._write()

    def _write(self) -> None:
        if self.path is None:
            return
        try:
            if not self._open:
                self.path.unlink(missing_ok=True)
                return
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self._open), encoding="utf-8")
            os.replace(tmp, self.path)
        except OSError as exc:  # a full or read-only disk must not stop scoring
            self.write_errors += 1
            if self.write_errors == 1 or self.write_errors % 100 == 0:
                log.error("cannot record open events in %s (%d failures): %s", self.path, self.write_errors, exc)


def restart_close(open_payload: dict[str, Any]) -> dict[str, Any]:
    """The close payload for an event the previous run left open."""
    return {**open_payload, "phase": "close", "close_reason": "agent_restarted"}
