"""Delivery confirmation by echo, for MQTT 3.1.1 where a PUBACK proves nothing.

An MQTT 3.1.1 broker that denies a publish by ACL still acknowledges it (the
protocol has no way to say no) and drops it: deleting the alert from the spool
on that PUBACK loses it silently. So under 3.1.1 the sink also subscribes to
its own alert topic and deletes an alert only when the broker routes it back:
that proves the broker accepted and delivered it. An alert whose echo does not
arrive within ``timeout_s`` of its PUBACK stays spooled, is counted as
``unconfirmed`` and is re-sent every ``retry_s``, with the reason in
``last_error``. (If the ACL lets the device write but not read its own alert
topic, the echo never comes either: grant it read access, use MQTT 5, which
reports refusals in the PUBACK, or turn verification off.)

Only the sink's pump thread uses an instance (no locking).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable


class EchoConfirmer:
    """Tracks alerts acknowledged by PUBACK until their echo confirms delivery."""

    def __init__(self, topic: str, timeout_s: float = 10.0, retry_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.topic = topic
        self.timeout_s = float(timeout_s)
        self.retry_s = float(retry_s)
        self._clock = clock
        self._awaiting: dict[int, float] = {}  # seq -> deadline for its echo
        self._early: set[int] = set()  # echoes that arrived before their PUBACK
        self._rewind_at: float | None = None
        self.confirmed = 0
        self.unconfirmed = 0

    @property
    def awaiting(self) -> int:
        return len(self._awaiting)

    def waiting_for(self, seq: int) -> bool:
        return seq in self._awaiting

    def on_puback(self, seq: int) -> bool:
        """PUBACK for ``seq``; True when its echo already came (delete it now)."""
        if seq in self._early:
            self._early.discard(seq)
            self.confirmed += 1
            return True
        self._awaiting[seq] = self._clock() + self.timeout_s
        return False

    def on_echo(self, payload: bytes, in_flight: Callable[[int], bool]) -> int | None:
        """The seq to delete for an echoed message, or None (not ours, or its PUBACK is still to come)."""
        seq = _seq_of(payload)
        if seq is None:
            return None
        if self._awaiting.pop(seq, None) is not None:
            self.confirmed += 1
            self._rewind_at = None
            return seq
        if in_flight(seq):
            self._early.add(seq)
            return None
        return seq  # a re-sent alert confirmed again: deleting twice is harmless

    def expired(self) -> list[int]:
        """Seqs whose echo is overdue: the broker acknowledged them and dropped them."""
        now = self._clock()
        late = [seq for seq, deadline in self._awaiting.items() if now >= deadline]
        for seq in late:
            del self._awaiting[seq]
        if late:
            self.unconfirmed += len(late)
            self._rewind_at = now + self.retry_s
        return late

    def rewind_due(self) -> bool:
        """True once per ``retry_s`` after a drop: time to send the unconfirmed alerts again."""
        if self._rewind_at is not None and self._clock() >= self._rewind_at:
            self._rewind_at = None
            return True
        return False

    def reset(self) -> None:
        """A new session: everything unconfirmed is re-sent from the spool anyway."""
        self._awaiting.clear()
        self._early.clear()
        self._rewind_at = None

    def reason(self, seq: int) -> str:
        return (f"broker acknowledged alert seq {seq} but it did not come back on {self.topic} within "
                f"{self.timeout_s:g} s: MQTT 3.1.1 acknowledges and drops what the ACL denies (allow this client "
                "to publish and read there, or use protocol 5); kept in the spool")


def _seq_of(payload: bytes) -> int | None:
    if len(payload) > 1 << 20:
        return None
    try:
        seq = json.loads(payload).get("seq")
    except (ValueError, AttributeError, RecursionError):
        return None
    return seq if isinstance(seq, int) and not isinstance(seq, bool) else None
