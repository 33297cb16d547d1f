"""Store-and-forward spool for alerts: SQLite in WAL mode with ``synchronous=FULL``.

An alert is appended (and fsynced) before anyone tries to publish it and is
deleted only when the broker acknowledged it, so it survives broker outages,
``kill -9`` and power loss: WAL + FULL means a committed row is on disk when
:meth:`AlertSpool.append` returns. Alerts are rare, so one fsync each is cheap.

``seq`` is written into the stored payload, so subscribers can order alerts
and drop the duplicates at-least-once delivery may produce after a crash. It
is never reused: the spool hands it out itself, above both SQLite's last row
and the high-water mark kept outside the WAL (``edge_agent.spool_recovery``).

When the file fails, no alert is lost silently and the agent keeps running:

* disk full / I/O error on append: the alert goes to a bounded in-memory queue
  that is delivered in seq order with the spooled rows and moved back to the
  file when it takes writes again; an alert pushed out of the full queue is
  counted in ``dropped``;
* a corrupt file at start is moved aside (``spool.db.corrupt-<UTC time>``) and
  a new one is opened; a file or directory that cannot be opened or written
  (read-only filesystem) means memory-only, retried every ``retry_s``;
* a damaged WAL (fewer alerts than the high-water mark says) is counted in
  ``lost`` and logged;
* at stop, alerts still held only in memory go into the file if it takes them
  now, else they are counted in ``dropped`` and logged (:meth:`settle_memory`).

:meth:`stats` reports all of it (``degraded`` is the reason, or ""). Bounded by
``max_messages`` and ``max_age_s``: the oldest rows are dropped first and
counted in ``dropped``, which is persisted. One instance may be shared between
threads (a lock serialises access).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_agent import spool_recovery as sql
from edge_agent.errors import VigilInputError
from edge_agent.spool_recovery import COUNTERS, HighWaterMark, connect_spool, is_corruption, quarantine, transaction

log = logging.getLogger("vigil.spool")


@dataclass(frozen=True)
class SpooledMessage:
    seq: int
    topic: str
    payload: str  # JSON text, "seq" included
    created: float
    attempts: int

    def payload_dict(self) -> dict[str, Any]:
        payload: dict[str, Any] = json.loads(self.payload)
        return payload


class AlertSpool:
    """Durable FIFO of (topic, JSON payload) with drop-oldest bounds and a memory fallback."""

    def __init__(
        self,
        path: str | Path,
        max_messages: int = 10000,
        max_age_s: float = 7 * 86400,
        *,
        clock: Callable[[], float] = time.time,
        max_memory: int = 1000,
        retry_s: float = 30.0,
    ) -> None:
        if max_messages < 1 or max_age_s <= 0 or max_memory < 1:
            raise VigilInputError("spool bounds must be positive", file=str(path))
        self.path = Path(path)
        self.max_messages = int(max_messages)
        self.max_age_s = float(max_age_s)
        self.max_memory = int(max_memory)
        self.retry_s = float(retry_s)
        self._clock = clock
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._memory: deque[SpooledMessage] = deque()  # alerts the file could not take, seq order
        self._unpersisted = dict.fromkeys(COUNTERS, 0)  # counted while the file was away
        self._persisted = dict.fromkeys(COUNTERS, 0)
        self._quarantined: list[str] = []
        self._write_errors = 0
        self._degraded = ""
        self._next_retry = 0.0
        self._opened = 0  # how often the file was (re)opened; see rewinds
        self._acked_not_deleted: set[int] = set()  # delivered, but the disk refused the DELETE so far
        self._mark = HighWaterMark(self.path.with_name(self.path.name + ".hwm"))
        self._last_seq = self._mark.appended
        with self._lock:
            self._open_or_degrade()
            if self._db is not None:
                self._guarded("prune", self._enforce_bounds)

    # -- public ---------------------------------------------------------------------

    def append(self, topic: str, payload: dict[str, Any]) -> int:
        """Store ``payload`` plus its new ``"seq"``; durable on return unless :meth:`stats` says degraded."""
        json.dumps(payload, allow_nan=False)  # fail before touching anything
        with self._lock:
            seq = self._last_seq + 1
            msg = SpooledMessage(seq, topic, json.dumps({**payload, "seq": seq}, separators=(",", ":")),
                                 self._clock(), 0)
            self._last_seq = seq
            self._recover_if_due()
            if not (self._db is not None and self._guarded("append", lambda db: self._insert(db, [msg]))):
                self._keep_in_memory(msg)
            if self._memory:
                self._move_memory_to_file()
            if self._acked_not_deleted:
                self._delete_acked()
            self._mark.update(appended=seq, floor=self._oldest_pending() - 1)
        return seq

    def pending(self, limit: int = 100, after: int = 0) -> list[SpooledMessage]:
        """Up to ``limit`` un-acked messages with ``seq > after``, oldest first (file and memory merged)."""
        with self._lock:
            self._recover_if_due()
            rows = self._query(
                "SELECT seq, topic, payload, created, attempts FROM spool WHERE seq > ? ORDER BY seq LIMIT ?",
                (int(after), int(limit)),
            )
            stored = [SpooledMessage(int(r[0]), r[1], r[2], float(r[3]), int(r[4])) for r in rows
                      if int(r[0]) not in self._acked_not_deleted]
            held = [m for m in self._memory if m.seq > after][:limit]
        return sorted(stored + held, key=lambda m: m.seq)[:limit]

    def ack(self, seq: int) -> bool:
        """Remove a message the broker acknowledged; False if it was already gone."""
        with self._lock:
            found = next((m for m in self._memory if m.seq == seq), None)
            if found is not None:
                self._memory.remove(found)
                gone = True
            else:
                self._acked_not_deleted.add(int(seq))
                gone = self._delete_acked()
            self._mark.update(floor=self._oldest_pending() - 1)
        return gone

    def _delete_acked(self) -> bool:
        """Delete acknowledged rows; ones the disk refuses now are hidden and deleted on a later try."""
        seqs = sorted(self._acked_not_deleted)
        deleted = self._guarded("ack", lambda db: sum(
            db.execute("DELETE FROM spool WHERE seq = ?", (seq,)).rowcount for seq in seqs))
        if deleted is None:
            return True  # delivered: it is not sent again by this process (kept only until it can be deleted)
        self._acked_not_deleted.difference_update(seqs)
        return bool(deleted)

    def mark_attempt(self, seqs: Iterable[int]) -> None:
        """Count a publish attempt (diagnostics: how often a message was re-sent)."""
        ids = [(int(s),) for s in seqs]
        if ids:
            with self._lock:
                self._guarded("mark", lambda db: db.executemany(
                    "UPDATE spool SET attempts = attempts + 1 WHERE seq = ?", ids))

    def depth(self) -> int:
        with self._lock:
            return self._stored_count() + len(self._memory)

    @property
    def dropped(self) -> int:
        """Messages dropped by the bounds (or pushed out of the memory queue) since the file was created."""
        with self._lock:
            return self._counter("dropped")

    def stats(self) -> dict[str, Any]:
        """Counters for health: ``degraded`` is why the spool is not durable now ("" when it is)."""
        with self._lock:
            return {
                "depth": self._stored_count() + len(self._memory),
                "memory_depth": len(self._memory),
                "dropped": self._counter("dropped"),
                "lost": self._counter("lost"),
                "quarantined": len(self._quarantined),
                "write_errors": self._write_errors,
                "mark_errors": self._mark.errors,
                "degraded": self._degraded,
            }

    @property
    def degraded(self) -> str:
        return self._degraded

    @property
    def rewinds(self) -> int:
        """Grows when the file came back after memory-only: it may hold rows older than ones already sent."""
        return max(0, self._opened - 1)

    def prune(self) -> int:
        """Apply the age bound now (also done on every append); returns how many were dropped."""
        with self._lock:
            cutoff = self._clock() - self.max_age_s
            old = [m for m in self._memory if m.created < cutoff]
            for msg in old:
                self._memory.remove(msg)
            self._bump("dropped", len(old))
            dropped = len(old) + int(self._guarded("prune", self._enforce_bounds) or 0)
            self._mark.update(floor=self._oldest_pending() - 1)
            return dropped

    def close(self) -> None:
        with self._lock:
            self._settle_memory()
            if self._db is not None:
                self._db.close()
                self._db = None
            self._mark.close()

    def __enter__(self) -> AlertSpool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def settle_memory(self) -> None:
        """At stop, alerts held only in memory die with the process: store them now if the file allows, else count."""
        with self._lock:
            self._settle_memory()

    def _settle_memory(self) -> None:
        if not self._memory:
            return
        if self._db is None:
            self._open_or_degrade()
        else:
            self._move_memory_to_file()
        if not self._memory:
            return
        count, first, last = len(self._memory), self._memory[0].seq, self._memory[-1].seq
        self._memory.clear()
        self._bump("dropped", count)
        log.error("spool: stopping with %d alert(s) held only in memory (seq %d-%d; %s): they are lost",
                  count, first, last, self._degraded or "the file refused them")

    # -- opening ------------------------------------------------------------------------

    def _open_or_degrade(self) -> None:
        """Open the file; quarantine it if corrupt; otherwise fall back to memory and retry later."""
        self._next_retry = time.monotonic() + self.retry_s
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = connect_spool(self.path)
        except OSError as exc:
            self._degrade(f"cannot create spool directory: {exc.strerror}")
            return
        except sqlite3.Error as exc:
            if not is_corruption(exc):
                self._degrade(f"spool cannot be opened or written ({exc})")
                return
            moved = quarantine(self.path)
            if moved is None:
                self._degrade(f"spool is corrupt ({exc}) and cannot be moved aside")
                return
            self._quarantined.append(str(moved))
            log.error("spool: %s is corrupt (%s): moved aside to %s, starting a new spool", self.path, exc, moved)
            try:
                self._db = connect_spool(self.path)
            except sqlite3.Error as again:
                self._degrade(f"spool cannot be opened after quarantine ({again})")
                return
        self._after_open()

    def _after_open(self) -> None:
        """Reconcile the file with the high-water mark, then take back what memory holds."""
        assert self._db is not None
        db = self._db
        stored_last = sql.last_stored_seq(db)
        lost = self._mark.appended - max(stored_last, self._mark.floor)
        lost -= sum(1 for m in self._memory if m.seq > max(stored_last, self._mark.floor))
        if lost > 0:
            log.error("spool: %d alert(s) spooled up to seq %d are missing from %s (damaged WAL or file): lost",
                      lost, self._mark.appended, self.path)
            self._unpersisted["lost"] += lost
        self._last_seq = max(self._last_seq, stored_last, self._mark.appended)
        self._mark.update(appended=self._last_seq)
        self._persisted = {name: sql.read_counter(db, name) for name in COUNTERS}
        self._degraded = ""
        self._opened += 1
        self._move_memory_to_file()

    def _degrade(self, reason: str) -> None:
        if reason != self._degraded:
            log.error("spool: %s: %s; alerts are kept in memory (up to %d) and the file is retried every %g s",
                      self.path, reason, self.max_memory, self.retry_s)
        self._degraded = reason
        if self._db is not None:
            self._db.close()
            self._db = None

    def _recover_if_due(self) -> None:
        if (self._db is None or self._memory) and time.monotonic() >= self._next_retry:
            if self._db is None:
                self._open_or_degrade()
            else:
                self._next_retry = time.monotonic() + self.retry_s
                self._move_memory_to_file()

    # -- internals ----------------------------------------------------------------------

    def _insert(self, db: sqlite3.Connection, msgs: list[SpooledMessage]) -> bool:
        sql.insert_rows(db, [(m.seq, m.topic, m.payload, m.created, m.attempts) for m in msgs], self._unpersisted)
        self._enforce_bounds(db)
        return True

    def _after_commit(self, db: sqlite3.Connection, inserted: bool) -> None:
        """The file's counters are the truth once committed (the insert carried the unpersisted ones)."""
        if inserted:
            self._unpersisted = dict.fromkeys(COUNTERS, 0)
        try:
            self._persisted = {name: sql.read_counter(db, name) for name in COUNTERS}
        except sqlite3.Error:
            pass

    def _move_memory_to_file(self) -> None:
        if self._db is None or not self._memory:
            return
        msgs = list(self._memory)
        if self._guarded("append", lambda db: self._insert(db, msgs)):
            self._memory.clear()
            log.warning("spool: %d alert(s) held in memory are in %s again", len(msgs), self.path)
            self._degraded = ""

    def _keep_in_memory(self, msg: SpooledMessage) -> None:
        self._memory.append(msg)
        if len(self._memory) > self.max_memory:
            oldest = self._memory.popleft()
            self._bump("dropped", 1)
            log.error("spool: memory queue full (%d): alert seq %d dropped", self.max_memory, oldest.seq)

    def _guarded(self, what: str, work: Callable[[sqlite3.Connection], Any]) -> Any:
        """Run ``work`` in a write transaction; a sqlite error degrades the spool and returns None."""
        db = self._db
        if db is None:
            return None
        try:
            result = transaction(db, work)
        except sqlite3.Error as exc:
            self._write_errors += 1
            if is_corruption(exc):
                self._degrade(f"spool {what} failed, the file is damaged ({exc})")
            else:
                reason = f"spool {what} failed ({exc})"
                if reason != self._degraded:
                    log.error("spool: %s: %s; alerts are kept in memory (up to %d)", self.path, reason, self.max_memory)
                self._degraded = reason
                self._next_retry = time.monotonic() + self.retry_s
            return None
        if what in ("append", "prune"):
            self._after_commit(db, inserted=what == "append")
        if not self._memory and self._degraded:
            self._degraded = ""  # the file takes writes again and holds everything
        return result

    def _query(self, sql: str, params: tuple[Any, ...]) -> list[Any]:
        if self._db is None:
            return []
        try:
            return self._db.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            self._write_errors += 1
            log.error("spool: read failed: %s", exc)
            return []

    def _enforce_bounds(self, db: sqlite3.Connection) -> int:
        return sql.drop_beyond_bounds(db, self._clock() - self.max_age_s, self.max_messages)

    def _stored_count(self) -> int:
        db = self._db
        if db is None:
            return 0
        try:
            return sql.row_count(db) - len(self._acked_not_deleted)
        except sqlite3.Error:
            return 0

    def _oldest_pending(self) -> int:
        oldest = [self._memory[0].seq] if self._memory else []
        if self._db is not None:
            try:
                stored = sql.oldest_seq(self._db)
                if stored is not None:
                    oldest.append(stored)
            except sqlite3.Error:
                return 0  # unknown: do not raise the floor
        return min(oldest) if oldest else self._last_seq + 1

    def _counter(self, name: str) -> int:
        return self._persisted[name] + self._unpersisted[name]

    def _bump(self, name: str, count: int) -> None:
        self._unpersisted[name] += count
