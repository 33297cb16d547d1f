"""Store-and-forward spool for alerts: SQLite in WAL mode with ``synchronous=FULL``.

An alert is appended (and fsynced) before anyone tries to publish it and is
deleted only when the broker acknowledged it, so it survives broker outages,
``kill -9`` and power loss: WAL + FULL means a committed row is on disk when
:meth:`AlertSpool.append` returns. Alerts are rare, so one fsync each is cheap.

``seq`` (AUTOINCREMENT: never reused, even after deletes or restarts) is
written into the stored payload, so subscribers can order alerts and drop the
duplicates at-least-once delivery may produce after a crash.

Bounded by ``max_messages`` and ``max_age_s``: the oldest rows are dropped
first and counted in ``dropped``, which is persisted so health reports it
across restarts. One instance may be shared between threads (a lock
serialises access).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_agent.errors import VigilInputError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS spool (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload TEXT NOT NULL,
    created REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


@dataclass(frozen=True)
class SpooledMessage:
    seq: int
    topic: str
    payload: str  # JSON text, "seq" included
    created: float
    attempts: int

    def payload_dict(self) -> dict[str, Any]:
        return json.loads(self.payload)


class AlertSpool:
    """Durable FIFO of (topic, JSON payload) with drop-oldest bounds."""

    def __init__(
        self,
        path: str | Path,
        max_messages: int = 10000,
        max_age_s: float = 7 * 86400,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_messages < 1 or max_age_s <= 0:
            raise VigilInputError("spool bounds must be positive", file=str(path))
        self.path = Path(path)
        self.max_messages = int(max_messages)
        self.max_age_s = float(max_age_s)
        self._clock = clock
        self._lock = threading.Lock()
        self._db = self._open()
        self.prune()

    # -- public ---------------------------------------------------------------------

    def append(self, topic: str, payload: dict[str, Any]) -> int:
        """Store ``payload`` plus its new ``"seq"``; durable on return. The caller's dict is not changed."""
        json.dumps(payload, allow_nan=False)  # fail before touching the file
        with self._lock, self._write("append") as db:
            cur = db.execute(
                "INSERT INTO spool (topic, payload, created, attempts) VALUES (?, '', ?, 0)", (topic, self._clock())
            )
            seq = int(cur.lastrowid or 0)
            text = json.dumps({**payload, "seq": seq}, separators=(",", ":"), allow_nan=False)
            db.execute("UPDATE spool SET payload = ? WHERE seq = ?", (text, seq))
            self._enforce_bounds(db)
        return seq

    def pending(self, limit: int = 100, after: int = 0) -> list[SpooledMessage]:
        """Up to ``limit`` un-acked messages with ``seq > after``, oldest first."""
        with self._lock, self._guard("read"):
            rows = self._db.execute(
                "SELECT seq, topic, payload, created, attempts FROM spool WHERE seq > ? ORDER BY seq LIMIT ?",
                (int(after), int(limit)),
            ).fetchall()
        return [SpooledMessage(int(r[0]), r[1], r[2], float(r[3]), int(r[4])) for r in rows]

    def ack(self, seq: int) -> bool:
        """Remove a message the broker acknowledged; False if it was already gone."""
        with self._lock, self._write("ack") as db:
            return db.execute("DELETE FROM spool WHERE seq = ?", (int(seq),)).rowcount > 0

    def mark_attempt(self, seqs: Iterable[int]) -> None:
        """Count a publish attempt (diagnostics: how often a message was re-sent)."""
        ids = [(int(s),) for s in seqs]
        if ids:
            with self._lock, self._write("mark") as db:
                db.executemany("UPDATE spool SET attempts = attempts + 1 WHERE seq = ?", ids)

    def depth(self) -> int:
        with self._lock, self._guard("read"):
            return int(self._db.execute("SELECT COUNT(*) FROM spool").fetchone()[0])

    @property
    def dropped(self) -> int:
        """Messages dropped by the bounds since the spool file was created."""
        with self._lock, self._guard("read"):
            row = self._db.execute("SELECT value FROM meta WHERE key = 'dropped'").fetchone()
        return int(row[0]) if row else 0

    def prune(self) -> int:
        """Apply the age bound now (also done on every append); returns how many were dropped."""
        with self._lock, self._write("prune") as db:
            return self._enforce_bounds(db)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> AlertSpool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals ----------------------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise VigilInputError(f"cannot create spool directory: {exc.strerror}", file=str(self.path)) from None
        try:
            # isolation_level=None: we issue BEGIN IMMEDIATE / COMMIT ourselves.
            db = sqlite3.connect(str(self.path), timeout=10.0, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise VigilInputError(f"cannot open spool: {exc}", file=str(self.path)) from None
        try:
            mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            db.execute("PRAGMA synchronous=FULL")
            check = db.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise sqlite3.DatabaseError(f"integrity check failed: {check}")
            db.executescript(_SCHEMA)
            # A real write now, so a read-only file fails at start, not at the first alert.
            db.execute("BEGIN IMMEDIATE")
            db.execute("INSERT INTO meta (key, value) VALUES ('dropped', 0) ON CONFLICT(key) DO NOTHING")
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            db.close()
            raise VigilInputError(f"spool is corrupt or not writable ({exc})", file=str(self.path)) from None
        if str(mode).lower() != "wal":
            db.close()
            raise VigilInputError(f"spool filesystem does not support WAL (journal_mode={mode})", file=str(self.path))
        return db

    def _enforce_bounds(self, db: sqlite3.Connection) -> int:
        cutoff = self._clock() - self.max_age_s
        dropped = db.execute("DELETE FROM spool WHERE created < ?", (cutoff,)).rowcount
        excess = int(db.execute("SELECT COUNT(*) FROM spool").fetchone()[0]) - self.max_messages
        if excess > 0:
            dropped += db.execute(
                "DELETE FROM spool WHERE seq IN (SELECT seq FROM spool ORDER BY seq LIMIT ?)", (excess,)
            ).rowcount
        if dropped > 0:
            db.execute("UPDATE meta SET value = value + ? WHERE key = 'dropped'", (dropped,))
        return max(0, dropped)

    def _guard(self, what: str) -> _Guard:
        return _Guard(self, what, None)

    def _write(self, what: str) -> _Guard:
        return _Guard(self, what, self._db)


class _Guard:
    """Turn sqlite errors into one-line VigilInputErrors; with a db, wrap a write transaction."""

    def __init__(self, spool: AlertSpool, what: str, db: sqlite3.Connection | None) -> None:
        self.spool, self.what, self.db = spool, what, db

    def __enter__(self) -> sqlite3.Connection:
        if self.db is not None:
            self._run("BEGIN IMMEDIATE")
        return self.spool._db

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, _tb: object) -> None:
        if self.db is not None:
            if exc_type is None:
                self._run("COMMIT")
                return
            try:
                self.db.execute("ROLLBACK")
            except sqlite3.Error:
                pass
        if isinstance(exc, sqlite3.Error):
            raise VigilInputError(f"spool {self.what} failed: {exc}", file=str(self.spool.path)) from None

    def _run(self, sql: str) -> None:
        try:
            assert self.db is not None
            self.db.execute(sql)
        except sqlite3.Error as exc:
            raise VigilInputError(f"spool {self.what} failed: {exc}", file=str(self.spool.path)) from None
