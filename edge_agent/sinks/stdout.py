"""StdoutSink: alerts as one line each on stdout (the default without a broker).

Also home of :func:`format_alert_line`, the human-readable one-liner shared
with ``vigil alerts``. With ``as_json=True`` each alert is printed as compact
JSON instead (for piping). Health reports are printed only with
``show_health=True`` (they are periodic and would drown the alerts).
"""

from __future__ import annotations

import json
import sys
import threading
from typing import Any, TextIO


def format_alert_line(payload: dict[str, Any]) -> str:
    """``<time> <device> OPEN|CLOSE event <id8> [seq N] peak P (thr T) windows W top f:share,... [reason R]``

    A close says why it closed (``close_reason``): only ``normal`` means the
    condition cleared; ``agent_stopped`` / ``agent_restarted`` must not read as
    a cleared fault.
    """
    phase = str(payload.get("phase", "?"))
    when = payload.get("start") if phase == "open" else payload.get("end")
    when = when or f"sample {payload.get('start_sample' if phase == 'open' else 'end_sample', '?')}"
    top = ",".join(f"{t.get('feature')}:{float(t.get('share', 0.0)):.2f}" for t in payload.get("top_features") or [])
    seq = f" seq {payload['seq']}" if "seq" in payload else ""
    reason = f" reason {payload['close_reason']}" if payload.get("close_reason") else ""
    return (
        f"{when} {payload.get('device_id', '?')} {phase.upper():5s} event {str(payload.get('event_id', '?'))[:8]}{seq}"
        f" peak {_num(payload.get('peak_score'))} (thr {_num(payload.get('threshold'))})"
        f" windows {payload.get('window_count', '?')} top {top or '-'}{reason}"
    )


def _num(value: Any) -> str:
    try:
        return f"{float(value):.4g}"
    except (TypeError, ValueError):
        return "?"


class StdoutSink:
    """Prints alerts; nothing to connect, nothing spooled (stdout is the journal)."""

    def __init__(self, stream: TextIO | None = None, *, as_json: bool = False, show_health: bool = False) -> None:
        self._stream = stream
        self.as_json = as_json
        self.show_health = show_health
        self._lock = threading.Lock()
        self._alerts = 0
        self._health = 0

    def start(self) -> None:
        pass

    def publish_alert(self, payload: dict[str, Any]) -> None:
        line = json.dumps(payload, separators=(",", ":")) if self.as_json else "ALERT " + format_alert_line(payload)
        self._write(line)
        self._alerts += 1

    def publish_health(self, payload: dict[str, Any]) -> None:
        if self.show_health:
            self._write("HEALTH " + json.dumps(payload, separators=(",", ":"), default=str))
        self._health += 1

    def stats(self) -> dict[str, Any]:
        return {"alerts_written": self._alerts, "health_reports": self._health}

    def stop(self) -> None:
        with self._lock:
            self._out().flush()

    def _out(self) -> TextIO:
        return self._stream if self._stream is not None else sys.stdout

    def _write(self, line: str) -> None:
        with self._lock:
            out = self._out()
            out.write(line + "\n")
            out.flush()
