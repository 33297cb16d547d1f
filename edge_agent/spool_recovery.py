"""The spool file underneath: schema, opening, transactions, the SQL of each operation, high-water mark,
quarantine, error kinds.

The high-water mark is a tiny file beside the database (``spool.db.hwm``),
outside SQLite and its WAL. It holds the last seq ever spooled and the
``floor`` below which every alert was acknowledged (or counted as dropped).
When SQLite comes back with fewer alerts than that (a truncated or bit-flipped
WAL silently loses its frames, a corrupt file was quarantined), the difference
is the number of alerts lost, reported instead of silently forgotten, and seq
numbers continue above the mark so subscribers never mistake a new alert for a
duplicate of a lost one.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger("vigil.spool")

SCHEMA = """
CREATE TABLE IF NOT EXISTS spool (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload TEXT NOT NULL,
    created REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""
COUNTERS = ("dropped", "lost")

_MARK_SIZE = 64
_MARK = re.compile(rb"vigil-spool-hwm/1 appended=(\d{1,19}) floor=(\d{1,19})")
# SQLite result codes that mean "this file is damaged", as opposed to "cannot write now".
_CORRUPT = {"SQLITE_CORRUPT", "SQLITE_NOTADB"}


def is_corruption(exc: sqlite3.Error) -> bool:
    name = getattr(exc, "sqlite_errorname", "")
    if name:
        return any(str(name).startswith(kind) for kind in _CORRUPT)
    text = str(exc).lower()
    return "malformed" in text or "not a database" in text or "integrity check failed" in text


class HighWaterMark:
    """``appended`` / ``floor`` seqs in a fixed-size file, rewritten in place and fsynced."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.appended = 0
        self.floor = 0
        self.errors = 0
        self._fd: int | None = None
        self._read()

    def _read(self) -> None:
        try:
            data = self.path.read_bytes()[:_MARK_SIZE]
        except FileNotFoundError:
            return
        except OSError as exc:
            self._fail(f"cannot read {self.path}: {exc.strerror}")
            return
        match = _MARK.match(data)
        if match is None:
            self._fail(f"{self.path} is damaged; seq numbers continue from the spool alone")
            return
        self.appended, self.floor = int(match.group(1)), int(match.group(2))

    def update(self, *, appended: int | None = None, floor: int | None = None) -> None:
        """Raise the mark (never lower it) and make it durable; a failure is counted, not raised."""
        new_appended = max(self.appended, appended or 0)
        new_floor = min(new_appended, max(self.floor, floor or 0))
        if (new_appended, new_floor) == (self.appended, self.floor) and self._fd is not None:
            return
        self.appended, self.floor = new_appended, new_floor
        record = f"vigil-spool-hwm/1 appended={new_appended} floor={new_floor}\n".encode().ljust(_MARK_SIZE, b" ")
        try:
            if self._fd is None:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            os.pwrite(self._fd, record, 0)
            os.fsync(self._fd)
        except OSError as exc:
            self._close()
            self._fail(f"cannot write {self.path}: {exc.strerror}")

    def _fail(self, message: str) -> None:
        self.errors += 1
        if self.errors == 1 or self.errors % 100 == 0:
            log.error("spool: high-water mark: %s (%d error(s))", message, self.errors)

    def _close(self) -> None:
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = None

    def close(self) -> None:
        self._close()


def quarantine(path: Path, now: dt.datetime | None = None) -> Path | None:
    """Move a damaged database (and its -wal/-shm) aside as ``NAME.corrupt-<UTC time>``; None if it cannot be moved."""
    stamp = (now or dt.datetime.now(dt.timezone.utc)).strftime("%Y%m%dT%H%M%S.%fZ")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    try:
        os.replace(path, target)
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.error("spool: cannot move the damaged %s aside: %s", path, exc.strerror)
        return None
    for suffix in ("-wal", "-shm"):
        side = path.with_name(path.name + suffix)
        try:
            os.replace(side, target.with_name(target.name + suffix))
        except OSError:
            pass
    return target


def connect_spool(path: Path) -> sqlite3.Connection:
    """Open the spool file in WAL + synchronous=FULL and prove it takes a write; sqlite errors propagate."""
    # isolation_level=None: we issue BEGIN IMMEDIATE / COMMIT ourselves.
    db = sqlite3.connect(str(path), timeout=10.0, isolation_level=None, check_same_thread=False)
    try:
        mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        db.execute("PRAGMA synchronous=FULL")
        check = db.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise sqlite3.DatabaseError(f"integrity check failed: {check}")
        db.executescript(SCHEMA)
        # A real write now, so a read-only file fails at start, not at the first alert.
        db.execute("BEGIN IMMEDIATE")
        for name in COUNTERS:
            db.execute("INSERT INTO meta (key, value) VALUES (?, 0) ON CONFLICT(key) DO NOTHING", (name,))
        db.execute("COMMIT")
        if str(mode).lower() != "wal":
            raise sqlite3.OperationalError(f"filesystem does not support WAL (journal_mode={mode})")
    except BaseException:
        db.close()
        raise
    return db


def transaction(db: sqlite3.Connection, work: Callable[[sqlite3.Connection], Any]) -> Any:
    """``work(db)`` in BEGIN IMMEDIATE / COMMIT; on a full disk, checkpoint the WAL and try once more."""
    for attempt in (1, 2):
        try:
            db.execute("BEGIN IMMEDIATE")
            result = work(db)
            db.execute("COMMIT")
            return result
        except sqlite3.Error as exc:
            try:
                db.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            full = str(getattr(exc, "sqlite_errorname", "")).startswith("SQLITE_FULL")
            if attempt == 2 or not full:
                raise
            # On a full disk the WAL may hold most of the space: fold it into the
            # database and truncate it, then try once more.
            try:
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error:
                raise exc from None
    return None


# --------------------------------------------------------------------------- the SQL of each operation
# (inside :func:`transaction` for writes; the spool keeps the locking, counters and memory fallback)


def insert_rows(db: sqlite3.Connection, rows: list[tuple[int, str, str, float, int]],
                counters: dict[str, int]) -> None:
    """Insert (seq, topic, payload, created, attempts) rows and add ``counters`` to the stored ones."""
    db.executemany("INSERT INTO spool (seq, topic, payload, created, attempts) VALUES (?, ?, ?, ?, ?)", rows)
    for name, count in counters.items():
        if count:
            db.execute("UPDATE meta SET value = value + ? WHERE key = ?", (count, name))


def drop_beyond_bounds(db: sqlite3.Connection, cutoff: float, max_messages: int) -> int:
    """Delete rows created before ``cutoff`` and the oldest beyond ``max_messages``; count them as dropped."""
    dropped = db.execute("DELETE FROM spool WHERE created < ?", (cutoff,)).rowcount
    excess = int(db.execute("SELECT COUNT(*) FROM spool").fetchone()[0]) - max_messages
    if excess > 0:
        dropped += db.execute(
            "DELETE FROM spool WHERE seq IN (SELECT seq FROM spool ORDER BY seq LIMIT ?)", (excess,)
        ).rowcount
    if dropped > 0:
        db.execute("UPDATE meta SET value = value + ? WHERE key = 'dropped'", (dropped,))
    return max(0, dropped)


def read_counter(db: sqlite3.Connection, name: str) -> int:
    row = db.execute("SELECT value FROM meta WHERE key = ?", (name,)).fetchone()
    return int(row[0]) if row else 0


def last_stored_seq(db: sqlite3.Connection) -> int:
    """The highest seq the file ever held (AUTOINCREMENT's record, or the largest row left)."""
    row = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'spool'").fetchone()
    return max(int(row[0]) if row else 0, int(db.execute("SELECT COALESCE(MAX(seq), 0) FROM spool").fetchone()[0]))


def row_count(db: sqlite3.Connection) -> int:
    return int(db.execute("SELECT COUNT(*) FROM spool").fetchone()[0])


def oldest_seq(db: sqlite3.Connection) -> int | None:
    row = db.execute("SELECT MIN(seq) FROM spool").fetchone()
    return None if not row or row[0] is None else int(row[0])
