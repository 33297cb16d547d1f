"""MqttSink: alerts spooled first, published QoS 1 in seq order, deleted on PUBACK.

Delivery is at-least-once. ``publish_alert`` returns once the alert is in the
SQLite spool; a "pump" thread then publishes spooled alerts strictly in seq
order with at most ``max_inflight`` awaiting PUBACK, and deletes each one only
when the broker acknowledged it (paho VERSION2 ``on_publish``). After a
reconnect (or a restart, since the spool is a file) every un-acked alert is
sent again from the oldest, so a subscriber may see a duplicate after a crash
or an outage: dedupe on ``(device_id, event_id, phase, seq)`` - ``vigil
alerts`` does. A newer alert is never sent before an older spooled one.

An MQTT 5 PUBACK with a failure reason (e.g. 0x87 not authorized by the ACL)
leaves the alert in the spool: it is counted as ``rejected`` and re-sent on the
next connection (bounded, like everything in the spool, by size and age).
MQTT 3.1.1 acknowledges denied publishes too, so there an alert is deleted
only once the broker routed it back to our own subscription
(:mod:`edge_agent.mqtt.echo`); one that does not come back stays spooled.

When the spool's file fails (disk full, read-only, corrupt: see
``edge_agent.spool``) alerts are held in its bounded memory queue and still go
out in seq order; ``stats()`` carries every spool counter as ``spool_*``.

Status: retained plain text ``online`` after each connect (``online degraded:
<why>`` while the spool is not durable), ``offline`` on ``stop()`` and as the
Last Will (so a kill or power loss also ends ``offline``).
Health: QoS 0, never spooled, dropped (and counted) while disconnected.

Only the pump thread touches the mid -> seq map and the spool reads/acks;
paho's callbacks just enqueue events (paho holds its own locks while calling
them).
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from typing import Any

from edge_agent.mqtt import constants as C
from edge_agent.mqtt.connection import ClientFactory, MqttConnection, Will, connect_check
from edge_agent.mqtt.echo import EchoConfirmer
from edge_agent.mqtt.reason import describe_reason
from edge_agent.mqtt.settings import MqttSettings, validate_device_id
from edge_agent.spool import AlertSpool

log = logging.getLogger("vigil.mqtt.sink")


class MqttSink:
    """The AlertSink for a broker; see the module docstring for the guarantees."""

    def __init__(
        self,
        settings: MqttSettings,
        device_id: str,
        spool: AlertSpool,
        *,
        client_factory: ClientFactory | None = None,
        max_inflight: int = C.MAX_INFLIGHT,
        verify_delivery: bool | None = None,
        echo_timeout_s: float = 10.0,
        echo_retry_s: float = 60.0,
    ) -> None:
        validate_device_id(device_id)
        self.settings = settings
        self.device_id = device_id
        self.spool = spool
        prefix = settings.prefix_for(device_id)
        self.alert_topic = f"{prefix}/{C.ALERT_TOPIC}"
        self.status_topic = f"{prefix}/{C.STATUS_TOPIC}"
        self.health_topic = f"{prefix}/{C.HEALTH_TOPIC}"
        self._max_inflight = max(1, int(max_inflight))
        self._factory = client_factory
        self._events: queue.Queue[tuple[Any, ...]] = queue.Queue()  # callbacks -> pump thread
        # None: verify by echo exactly where the PUBACK cannot be trusted (MQTT 3.1.1).
        verify = settings.protocol != "5" if verify_delivery is None else verify_delivery
        self._echo = EchoConfirmer(self.alert_topic, echo_timeout_s, echo_retry_s) if verify else None
        self._conn = MqttConnection(
            settings,
            settings.client_id_for(device_id),
            will=Will(self.status_topic, C.STATUS_OFFLINE, qos=C.STATUS_QOS, retain=True),
            on_connected=lambda gen: self._events.put(("connected", gen)),
            on_disconnected=lambda gen: self._events.put(("disconnected", gen)),
            on_published=lambda gen, mid, rc: self._events.put(("published", gen, mid, rc)),
            on_message=lambda topic, payload: self._events.put(("echo", payload)),
            client_factory=client_factory,
            max_inflight=self._max_inflight,
        )
        self._pump: threading.Thread | None = None
        # pump-thread state
        self._gen: int | None = None
        self._inflight: dict[int, int] = {}  # mid -> seq
        self._cursor = 0  # highest seq handed to paho in this session
        self._status_sent = ""  # the retained status text last published
        self._rewinds_seen = spool.rewinds
        # counters (ints are updated atomically enough under the GIL; read by stats())
        self._published = 0
        self._acked = 0
        self._rejected = 0
        self._health_published = 0
        self._health_dropped = 0
        self._inflight_count = 0
        self._unspoolable = 0
        self._last_error: str | None = None

    # -- AlertSink ---------------------------------------------------------------------

    def start(self) -> None:
        """Connect in the background; returns at once (alerts spool until connected)."""
        if self._pump is not None:
            return
        self._pump = threading.Thread(target=self._run_pump, name="vigil-mqtt-pump", daemon=True)
        self._pump.start()
        self._conn.start()
        depth = self.spool.depth()
        if depth:
            log.info("mqtt: %d alert(s) waiting in the spool from before; they go first", depth)

    def publish_alert(self, payload: dict[str, Any]) -> None:
        """Spool (durable on return; in memory, in order, when the disk fails), then let the pump publish it."""
        try:
            seq = self.spool.append(self.alert_topic, payload)
        except (ValueError, TypeError) as exc:  # not JSON (NaN, an object): a bug upstream, counted
            self._unspoolable += 1
            self._last_error = f"alert not spooled: {exc}"
            log.error("mqtt: %s", self._last_error)
            return
        where = "spooled" if not self.spool.degraded else f"held in memory ({self.spool.degraded})"
        log.info("mqtt: alert seq %d (%s %s) %s", seq, payload.get("phase", "?"), payload.get("event_id", "?"), where)
        self._events.put(("wake",))

    def publish_health(self, payload: dict[str, Any]) -> None:
        """QoS 0, not spooled: a stale health report is worth nothing after an outage."""
        text = json.dumps(payload, separators=(",", ":"), default=str)
        if self._conn.publish(self.health_topic, text, qos=C.HEALTH_QOS) is None:
            self._health_dropped += 1
        else:
            self._health_published += 1

    def stats(self) -> dict[str, Any]:
        """Counters for health; ``last_error`` is one line or None; ``spool_degraded`` is "" when durable."""
        spool = self.spool.stats()
        return {
            "connected": int(self._conn.connected),
            "published": self._published,
            "acked": self._acked,
            "rejected": self._rejected,
            "inflight": self._inflight_count,
            "unspoolable": self._unspoolable,
            "delivery_check": "echo" if self._echo is not None else "puback",
            "awaiting_echo": self._echo.awaiting if self._echo is not None else 0,
            "unconfirmed": self._echo.unconfirmed if self._echo is not None else 0,
            **{f"spool_{name}": value for name, value in spool.items()},
            "reconnects": self._conn.reconnects,
            "connect_failures": self._conn.connect_failures,
            "health_published": self._health_published,
            "health_dropped": self._health_dropped,
            "last_error": self._conn.last_error or self._last_error or spool["degraded"] or None,
        }

    def stop(self, timeout: float = C.STOP_TIMEOUT_S) -> None:
        """Wait briefly for in-flight PUBACKs, publish retained ``offline``, disconnect."""
        deadline = time.monotonic() + timeout
        self.wait_idle(timeout / 2)
        self._conn.stop(
            timeout=max(0.2, deadline - time.monotonic()),
            final=Will(self.status_topic, C.STATUS_OFFLINE, qos=C.STATUS_QOS, retain=True),
        )
        if self._pump is not None:
            self._events.put(("stop",))
            self._pump.join(max(0.2, deadline - time.monotonic()))
            self._pump = None
        self.spool.settle_memory()  # what only memory holds would vanish silently with the process
        log.info("mqtt: sink stopped (%d alert(s) left in the spool)", self.spool.depth())

    # -- extras for the service and tests ----------------------------------------------

    @property
    def connected(self) -> bool:
        return self._conn.connected

    @property
    def fatal_refusal(self) -> str | None:
        """Set while the broker refuses us for credentials/ACL reasons (retrying anyway)."""
        return self._conn.fatal_refusal

    def wait_connected(self, timeout: float) -> bool:
        return _poll(lambda: self._conn.connected, timeout)

    def wait_idle(self, timeout: float) -> bool:
        """True once nothing is in flight and (while connected) nothing is left to send."""
        def idle() -> bool:
            # Alerts the broker rejected (MQTT 5) stay spooled but are behind the cursor: not waited for.
            awaiting = self._echo.awaiting if self._echo is not None else 0
            if self._inflight_count or awaiting or not self._conn.connected:
                return not self._inflight_count and not awaiting
            return not self.spool.pending(1, after=self._cursor)

        return _poll(idle, timeout)

    def connect_check(self, timeout: float = 10.0) -> str | None:
        """Connect once with a separate client id: None if accepted, else the reason (one line)."""
        client_id = f"{self.settings.client_id_for(self.device_id)}-check"[:128]
        return connect_check(self.settings, client_id, timeout, self._factory)

    # -- pump thread ------------------------------------------------------------------------

    def _run_pump(self) -> None:
        while True:
            try:
                # A timeout only where echoes are awaited: their deadlines need a clock.
                event = self._events.get(timeout=0.25 if self._echo is not None else None)
            except queue.Empty:
                event = ("tick",)
            if event[0] == "stop":
                return
            try:
                self._handle(event)
                self._check_echoes()
                self._fill()
            except Exception as exc:  # a failing disk must not kill delivery for good
                self._last_error = f"{type(exc).__name__}: {exc}"
                log.error("mqtt: pump error: %s", self._last_error)
                time.sleep(0.5)
                self._events.put(("wake",))

    def _handle(self, event: tuple[Any, ...]) -> None:
        kind = event[0]
        if kind == "connected":
            self._gen, self._cursor = event[1], 0
            self._set_inflight({})
            self._status_sent = self._status_text()
            if self._echo is not None:
                self._echo.reset()
                # Sent before any alert of this session, so the broker routes every one back.
                self._conn.subscribe(self.alert_topic, qos=C.ALERT_QOS)
            self._conn.publish(self.status_topic, self._status_text(), qos=C.STATUS_QOS, retain=True, gen=self._gen)
        elif kind == "disconnected" and event[1] == self._gen:
            # Whatever was in flight is re-sent from the spool on the next session.
            self._gen, self._cursor = None, 0
            self._set_inflight({})
            if self._echo is not None:
                self._echo.reset()
        elif kind == "published":
            self._on_puback(*event[1:])
        elif kind == "echo" and self._echo is not None:
            in_flight = set(self._inflight.values())
            seq = self._echo.on_echo(event[1], in_flight.__contains__)
            if seq is not None:
                self._delivered(seq, "delivered (its echo came back)")
        self._refresh_status()

    def _status_text(self) -> str:
        """``online``, or ``online degraded: <why>`` while alerts are not durable (loud on the status topic)."""
        degraded = self.spool.degraded
        return f"{C.STATUS_ONLINE} degraded: {degraded}"[:200] if degraded else C.STATUS_ONLINE

    def _refresh_status(self) -> None:
        text = self._status_text()
        if self._gen is not None and text != self._status_sent:
            if self._conn.publish(self.status_topic, text, qos=C.STATUS_QOS, retain=True, gen=self._gen) is not None:
                self._status_sent = text

    def _on_puback(self, gen: int, mid: int, rc: int) -> None:
        if gen != self._gen or mid not in self._inflight:
            return  # the status message, or a late ack of an old session
        seq = self._inflight.pop(mid)
        self._inflight_count = len(self._inflight)
        if rc >= 0x80:
            self._rejected += 1
            self._last_error = f"broker rejected alert seq {seq}: {describe_reason(rc)}"
            log.error("mqtt: %s (kept in the spool)", self._last_error)
            return
        if self._echo is not None and not self._echo.on_puback(seq):
            return  # deleted when its echo arrives
        self._delivered(seq, "acknowledged by the broker")

    def _delivered(self, seq: int, how: str) -> None:
        # Count before deleting: a reader that misses the row in the spool then sees it counted.
        self._acked += 1
        self.spool.ack(seq)
        log.info("mqtt: alert seq %d %s", seq, how)

    def _check_echoes(self) -> None:
        if self._echo is None:
            return
        late = self._echo.expired()
        if late:
            self._last_error = self._echo.reason(late[0])
            log.error("mqtt: %s (%d alert(s) unconfirmed)", self._last_error, len(late))
        if self._echo.rewind_due() and self._gen is not None:
            self._cursor = 0  # send the unconfirmed ones again: the ACL may have been fixed

    def _fill(self) -> None:
        """Top the in-flight window up with the next spooled alerts, oldest first."""
        if self._gen is None:
            return
        room = self._max_inflight - len(self._inflight)
        if room <= 0:
            return
        if self.spool.rewinds != self._rewinds_seen:
            # The spool file came back with rows older than the cursor: send from the oldest again.
            self._rewinds_seen, self._cursor = self.spool.rewinds, 0
        in_flight = set(self._inflight.values())
        sent: list[int] = []
        for msg in self.spool.pending(room + len(in_flight), after=self._cursor):
            if msg.seq in in_flight or (self._echo is not None and self._echo.waiting_for(msg.seq)):
                self._cursor = max(self._cursor, msg.seq)  # already sent in this session
                continue
            if len(sent) >= room:
                break
            mid = self._conn.publish(msg.topic, msg.payload, qos=C.ALERT_QOS, gen=self._gen)
            if mid is None:
                break  # connection just went; the disconnect event resets the cursor
            self._inflight[mid] = msg.seq
            self._cursor = msg.seq
            self._published += 1
            sent.append(msg.seq)
        self._inflight_count = len(self._inflight)
        self.spool.mark_attempt(sent)

    def _set_inflight(self, value: dict[int, int]) -> None:
        self._inflight = value
        self._inflight_count = len(value)


def _poll(condition: Any, timeout: float, step: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(step)
