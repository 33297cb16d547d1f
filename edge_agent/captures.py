"""Captures for retraining: the raw rows around each alert, kept in a bounded directory.

:class:`SampleRing` keeps the last N raw samples (values, timestamps, stream
rows) in fixed numpy arrays: appending a block is two slice copies, nothing
is allocated per block. When an event opens, :class:`CaptureRecorder` notes
the rows from ``before_s`` before the event's first row; when it closes, the
rows up to ``after_s`` after its last row; once the ring holds them (or the
agent stops) it writes them through :class:`CaptureStore` as ``<name>.npy`` +
``<name>.json`` (see :mod:`edge_agent.capture_protocol`). The ring grows
while an event is open, up to ``max_rows`` (plus one read); an event still open at
``max_rows`` rows is written then (``event_open`` in the sidecar) and its
close is not captured again. The store drops the oldest captures beyond
``max_count`` files or ``max_bytes``; every write, drop and failure is counted
for the health message. Rows the ring did not hold are left out and the
sidecar says ``truncated``.

Raw means as the source delivered them, before sample quality: a capture of
a sensor glitch shows the glitch. ``valid`` in the sidecar lists the rows the
source itself marked bad.
"""

from __future__ import annotations

import io
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_agent.capture_protocol import CAPTURE_SCHEMA, SUFFIXES, capture_name, valid_name
from edge_agent.errors import VigilInputError
from edge_agent.payload import iso_time
from edge_agent.sources.base import SampleBlock

log = logging.getLogger("vigil.captures")

#: Rows per capture side when neither the bundle nor the timestamps give a sampling rate.
FALLBACK_ROWS = 1024
_SCORE_KEYS = ("peak_score", "mean_score", "threshold", "window_count", "top_features", "fault", "feature",
               "value", "limit", "close_reason")


class SampleRing:
    """The last ``capacity`` samples: float32 values ``[capacity, features]``, float64 times, int64 rows."""

    def __init__(self, capacity: int, n_features: int) -> None:
        self.capacity = max(1, int(capacity))
        self.values = np.zeros((self.capacity, n_features), dtype=np.float32)
        self.times = np.zeros(self.capacity, dtype=np.float64)
        self.rows = np.full(self.capacity, -1, dtype=np.int64)
        self.valid = np.ones(self.capacity, dtype=bool)
        self._next = 0
        self.last_row = -1  # stream row of the newest sample (-1: empty)

    def append(self, block: SampleBlock, first_row: int) -> None:
        n = len(block)
        if n == 0:
            return
        values, times = block.values, block.timestamps
        rows = np.arange(first_row, first_row + n, dtype=np.int64)
        valid = np.ones(n, dtype=bool) if block.valid is None else np.asarray(block.valid, dtype=bool)
        if n > self.capacity:  # only the newest fit
            values, times, rows, valid = values[-self.capacity:], times[-self.capacity:], rows[-self.capacity:], \
                valid[-self.capacity:]
            n = self.capacity
        first = min(n, self.capacity - self._next)
        for dst, src in ((self.values, values), (self.times, times), (self.rows, rows), (self.valid, valid)):
            dst[self._next:self._next + first] = src[:first]
            dst[:n - first] = src[first:]
        self._next = (self._next + n) % self.capacity
        self.last_row = int(rows[-1])

    def select(self, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(values, times, rows, valid) of the held samples with ``lo <= row < hi``, oldest first."""
        order = np.r_[self._next:self.capacity, 0:self._next]
        rows = self.rows[order]
        keep = order[(rows >= lo) & (rows < hi)]
        return self.values[keep], self.times[keep], self.rows[keep], self.valid[keep]

    def grow(self, capacity: int) -> None:
        """Hold up to ``capacity`` samples from now on, keeping what is held (oldest first)."""
        if capacity <= self.capacity:
            return
        order = np.r_[self._next:self.capacity, 0:self._next]
        held = self.rows[order] >= 0
        keep = order[held]
        n = keep.size
        values = np.zeros((capacity, self.values.shape[1]), dtype=np.float32)
        times, rows = np.zeros(capacity, dtype=np.float64), np.full(capacity, -1, dtype=np.int64)
        valid = np.ones(capacity, dtype=bool)
        values[:n], times[:n], rows[:n], valid[:n] = self.values[keep], self.times[keep], self.rows[keep], \
            self.valid[keep]
        self.values, self.times, self.rows, self.valid = values, times, rows, valid
        self.capacity, self._next = capacity, n % capacity

    @property
    def first_row(self) -> int:
        held = self.rows[self.rows >= 0]
        return int(held.min()) if held.size else -1


class CaptureStore:
    """``<name>.npy`` + ``<name>.json`` pairs in one directory, bounded by count and bytes (oldest dropped)."""

    def __init__(self, folder: Path, max_count: int, max_bytes: int) -> None:
        self.folder = Path(folder)
        self.max_count = int(max_count)
        self.max_bytes = int(max_bytes)
        self.written = 0
        self.dropped = 0
        self.errors = 0
        self.last_error: str | None = None

    def names(self) -> list[str]:
        """Complete captures (both files present), oldest first."""
        try:
            found = [p.stem for p in self.folder.glob("*.json") if (p.with_suffix(".npy")).is_file()]
        except OSError:
            return []
        return sorted(name for name in found if valid_name(name))

    def files(self, name: str) -> dict[str, Path]:
        return {f"{name}{suffix}": self.folder / f"{name}{suffix}" for suffix in SUFFIXES}

    def sizes(self, name: str) -> dict[str, int]:
        out = {}
        for file, path in self.files(name).items():
            try:
                out[file] = path.stat().st_size
            except OSError:
                out[file] = 0
        return out

    def usage(self) -> tuple[int, int]:
        names = self.names()
        return len(names), sum(sum(self.sizes(n).values()) for n in names)

    def write(self, name: str, values: np.ndarray, sidecar: dict[str, Any]) -> bool:
        """Write one capture atomically (temp files, then rename; the sidecar last); False on failure."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            buffer = io.BytesIO()
            np.save(buffer, np.ascontiguousarray(values, dtype=np.float32), allow_pickle=False)
            text = json.dumps(sidecar, indent=1, default=_json_default) + "\n"
            needed = len(buffer.getvalue()) + len(text.encode())
            if needed > self.max_bytes:
                raise OSError(f"capture of {needed} bytes is larger than captures.max_bytes = {self.max_bytes}")
            self._make_room(needed)
            for suffix, data in ((".npy", buffer.getvalue()), (".json", text.encode())):
                target = self.folder / f"{name}{suffix}"
                tmp = target.with_name(f".{target.name}.tmp")
                tmp.write_bytes(data)
                os.replace(tmp, target)
        except OSError as exc:
            self.errors += 1
            self.last_error = f"capture {name} not written: {exc.strerror or exc}"
            log.error("%s", self.last_error)
            return False
        self.written += 1
        return True

    def _make_room(self, needed: int) -> None:
        names = self.names()
        sizes = {n: sum(self.sizes(n).values()) for n in names}
        total = sum(sizes.values())
        while names and (len(names) + 1 > self.max_count or total + needed > self.max_bytes):
            oldest = names.pop(0)
            for path in self.files(oldest).values():
                path.unlink(missing_ok=True)
            total -= sizes[oldest]
            self.dropped += 1
            log.info("captures: dropped the oldest capture %s (limits %d captures, %d bytes)", oldest,
                     self.max_count, self.max_bytes)


@dataclass
class PendingCapture:
    name: str
    lo: int
    hi: int  # exclusive; moves to the close's last row + after when the event closes
    alerts: list[dict[str, Any]]
    open: bool = True


class CaptureRecorder:
    """Ring + pending captures + store; the agent calls :meth:`on_block`, :meth:`on_alert`, :meth:`flush`."""

    def __init__(self, store: CaptureStore, n_features: int, features: list[str], *, before_s: float,
                 after_s: float, max_rows: int, rate_hz: float | None, window: int, device_id: str,
                 model_id: str) -> None:
        self.store = store
        self.features = list(features)
        self.n_features = n_features
        self.before_s, self.after_s = float(before_s), float(after_s)
        self.max_rows = int(max_rows)
        self.window = int(window)
        self.device_id, self.model_id = device_id, model_id
        self.rate_hz = rate_hz
        self.ring: SampleRing | None = None  # sized at the first block (the rate may come from its timestamps)
        self.pending: list[PendingCapture] = []
        self.truncated = 0

    # -- agent hooks ------------------------------------------------------------------

    def on_block(self, block: SampleBlock, first_row: int) -> None:
        if len(block) == 0:
            return
        if self.ring is None:
            self.ring = SampleRing(self._capacity(block), self.n_features)
        # A read larger than the margin would push out the rows before an event decided inside it,
        # and an open event keeps its first rows until it closes (up to max_rows).
        span = max((first_row + len(block) - p.lo for p in self.pending), default=0)
        self.ring.grow(min(self.max_rows, max(self._capacity(block), span)) + len(block))
        self.ring.append(block, first_row)
        self._write_due(final=False)

    def on_alert(self, payload: dict[str, Any]) -> None:
        event_id = str(payload.get("event_id", ""))
        for item in self.pending:
            if item.alerts and item.alerts[0].get("event_id") == event_id:
                item.alerts.append(_alert_summary(payload))
                if payload.get("phase") == "close":
                    item.open = False
                    item.hi = max(item.hi, int(payload.get("end_sample", 0)) + 1 + self._side_rows()[1])
                    self._write_due(final=False)
                return
        if payload.get("phase") != "open" or self.ring is None:
            return
        before, after = self._side_rows()
        start, end = int(payload.get("start_sample", 0)), int(payload.get("end_sample", 0))
        name = capture_name(_stamp(), event_id)
        self.pending.append(PendingCapture(name, max(0, start - before), end + 1 + after, [_alert_summary(payload)]))
        self._write_due(final=False)

    def flush(self) -> None:
        """Write every pending capture with the rows there are (the agent is stopping)."""
        self._write_due(final=True)

    def counters(self) -> dict[str, Any]:
        count, size = self.store.usage()
        return {"written": self.store.written, "dropped": self.store.dropped, "errors": self.store.errors,
                "truncated": self.truncated, "pending": len(self.pending), "stored": count, "stored_bytes": size}

    # -- internals ----------------------------------------------------------------------

    def _rate(self) -> float | None:
        return self.rate_hz if self.rate_hz and self.rate_hz > 0 else None

    def _side_rows(self) -> tuple[int, int]:
        rate = self._rate()
        if rate is None:
            return FALLBACK_ROWS, FALLBACK_ROWS
        return int(np.ceil(self.before_s * rate)), int(np.ceil(self.after_s * rate))

    def _capacity(self, block: SampleBlock) -> int:
        if self.ring is None and self._rate() is None and len(block) > 1:
            steps = np.diff(np.asarray(block.timestamps, dtype=np.float64))
            step = float(np.median(steps)) if steps.size else 0.0
            self.rate_hz = 1.0 / step if step > 0 else None
        before, after = self._side_rows()
        # An event's first row lies a few windows before the row it opened on.
        return min(self.max_rows, before + after + 8 * self.window + 1)

    def _write_due(self, final: bool) -> None:
        if self.ring is None or not self.pending:
            return
        last = self.ring.last_row
        due = [p for p in self.pending
               if final or (not p.open and last >= p.hi - 1) or last - p.lo + 1 >= self.max_rows]
        for item in due:
            self.pending.remove(item)
            self._write(item)

    def _write(self, item: PendingCapture) -> None:
        assert self.ring is not None
        hi = item.lo + self.max_rows if item.open else min(item.hi, item.lo + self.max_rows)
        values, times, rows, valid = self.ring.select(item.lo, hi)
        truncated = bool(rows.size == 0 or rows[0] > item.lo or rows[-1] < hi - 1)
        self.truncated += int(truncated)
        first = item.alerts[0]
        sidecar = {
            "schema": CAPTURE_SCHEMA, "name": item.name, "event_id": first.get("event_id"),
            "kind": first.get("kind"), "device_id": self.device_id, "model_id": self.model_id,
            "features": self.features, "rate_hz": self._rate(),
            "rows": {"first": int(rows[0]) if rows.size else None, "last": int(rows[-1]) if rows.size else None,
                     "count": int(rows.size), "requested": [item.lo, hi - 1]},
            "times": {"first": iso_time(float(times[0])) if times.size else None,
                      "last": iso_time(float(times[-1])) if times.size else None,
                      "first_unix": float(times[0]) if times.size else None},
            "event_rows": [first.get("start_sample"), None if item.open else item.alerts[-1].get("end_sample")],
            "event_open": item.open,
            "gaps": int(np.count_nonzero(np.diff(rows) != 1)) if rows.size > 1 else 0,
            "invalid_rows": [int(r) for r in rows[~valid][:1000]],
            "scores": {k: first[k] for k in ("peak_score", "mean_score", "threshold") if k in first},
            "alerts": item.alerts, "truncated": truncated, "written": iso_time(time.time()),
        }
        if self.store.write(item.name, values, sidecar):
            log.info("captures: wrote %s (%d rows, event %s)", item.name, rows.size, first.get("event_id"))


def _stamp() -> str:
    """UTC time to the microsecond: capture names sort oldest first (what the store drops first)."""
    now = time.time()
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + f"{int(now % 1 * 1e6):06d}Z"


def _alert_summary(payload: dict[str, Any]) -> dict[str, Any]:
    keep = ("event_id", "kind", "phase", "start", "end", "start_sample", "end_sample", *_SCORE_KEYS)
    return {k: payload[k] for k in keep if k in payload}


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def read_capture(path: Path) -> tuple[np.ndarray, dict[str, Any]]:
    """(rows float32 ``[n, features]``, sidecar) of ``<name>.npy`` or ``<name>.json``; VigilInputError if unusable."""
    base = Path(path)
    npy, side = base.with_suffix(".npy"), base.with_suffix(".json")
    try:
        sidecar = json.loads(side.read_text(encoding="utf-8"))
        values = np.load(npy, allow_pickle=False)
    except FileNotFoundError as exc:
        raise VigilInputError(f"capture file missing: {exc.filename}", file=str(base)) from None
    except (OSError, ValueError) as exc:
        raise VigilInputError(f"not a readable capture ({exc})", file=str(base)) from None
    if not isinstance(sidecar, dict) or sidecar.get("schema") != CAPTURE_SCHEMA:
        raise VigilInputError(f"sidecar is not a {CAPTURE_SCHEMA} capture", file=str(side))
    features = sidecar.get("features")
    if values.ndim != 2 or not isinstance(features, list) or values.shape[1] != len(features):
        raise VigilInputError(f"rows of shape {values.shape} do not match the sidecar's features", file=str(npy))
    return values, sidecar
