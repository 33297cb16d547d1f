"""JsonlSink: one JSON object per alert line, appended and fsynced per alert.

``publish_alert`` returns only after ``fsync``, so an alert written survives a
``kill -9`` or power loss (a torn last line is possible only if the machine dies
mid-write; readers should skip an unparsable final line). No ``seq`` is added:
the file order is the order. Health reports are not mixed into the alert
file: the latest one is written atomically to a sibling
``<stem>.health.json`` (write to a temp file, then rename; no fsync, it is only
a snapshot), or ignored with ``write_health=False``.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

from edge_agent.errors import VigilInputError


class JsonlSink:
    def __init__(self, path: str | Path, *, write_health: bool = True) -> None:
        self.path = Path(path)
        self.health_path = self.path.with_name(self.path.stem + ".health.json") if write_health else None
        self._lock = threading.Lock()
        self._fh: Any = None
        self._alerts = 0
        self._health = 0

    def start(self) -> None:
        if self._fh is not None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (kept open for the run)
        except OSError as exc:
            raise VigilInputError(f"cannot open for appending: {exc.strerror}", file=str(self.path)) from None

    def publish_alert(self, payload: dict[str, Any]) -> None:
        line = json.dumps(payload, separators=(",", ":"), allow_nan=False)
        with self._lock:
            if self._fh is None:
                self.start()
            try:
                self._fh.write(line + "\n")
                self._fh.flush()
                os.fsync(self._fh.fileno())
            except OSError as exc:
                raise VigilInputError(f"cannot write alert: {exc.strerror}", file=str(self.path)) from None
            self._alerts += 1

    def publish_health(self, payload: dict[str, Any]) -> None:
        self._health += 1
        if self.health_path is None:
            return
        tmp = self.health_path.with_name(self.health_path.name + ".tmp")
        try:
            tmp.write_text(json.dumps(payload, indent=1, default=str) + "\n", encoding="utf-8")
            os.replace(tmp, self.health_path)
        except OSError:
            pass  # health is best effort; alerts are what must not fail

    def stats(self) -> dict[str, Any]:
        return {"alerts_written": self._alerts, "health_reports": self._health}

    def stop(self) -> None:
        with self._lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None
