"""The subscriber side used by ``vigil alerts``: receive, dedupe, hand over in order.

Subscribes (QoS 1) to ``<root>/<device|+>/alert`` and ``<root>/<device|+>/status``
and re-subscribes after every reconnect. Messages are queued for the caller's
thread (:meth:`AlertSubscriber.get`). Alerts are at-least-once, so duplicates
(same ``device_id``, ``event_id``, ``phase``, ``seq``) are dropped here.

With ``share=GROUP`` the alert filter becomes the MQTT 5 shared subscription
``$share/GROUP/<filter>``: the broker hands each alert to one member of the group, so several
consumers (on several machines, through a broker cluster) split the stream. Status stays a plain
subscription (every consumer sees who is online; brokers send no retained messages to shared
subscriptions). Duplicates are dropped per consumer: a re-send may reach another member, so what
consumers write downstream should be idempotent on (device_id, event_id, phase, seq).

Any message on an alert topic that is not a valid alert (not UTF-8, not JSON,
too large or too deep, or not matching ``alert.schema.json``; see
:mod:`edge_agent.mqtt.alert_check`) is counted in ``invalid`` and handed over
as kind ``"invalid"`` with the reason: never fatal, never shown as an alert.
"""

from __future__ import annotations

import logging
import queue
import threading
import uuid
from collections import deque
from dataclasses import dataclass
from typing import Any

from edge_agent.config_values import check_topic_level
from edge_agent.mqtt import constants as C
from edge_agent.mqtt.alert_check import parse_alert
from edge_agent.mqtt.connection import ClientFactory, MqttConnection
from edge_agent.mqtt.settings import MqttSettings, validate_device_id, validate_topic_prefix

log = logging.getLogger("vigil.mqtt.subscriber")


@dataclass(frozen=True)
class Received:
    kind: str  # "alert", "status" or "invalid"
    topic: str
    device: str
    payload: dict[str, Any] | None  # the alert JSON
    text: str  # raw text (status value, or why it is invalid)


class Deduper:
    """Remembers the last ``size`` alert keys; ``seen`` is True for a repeat."""

    def __init__(self, size: int = 10000) -> None:
        self._keys: set[tuple[Any, ...]] = set()
        self._order: deque[tuple[Any, ...]] = deque()
        self._size = size

    def seen(self, payload: dict[str, Any]) -> bool:
        key = (payload.get("device_id"), payload.get("event_id"), payload.get("phase"), payload.get("seq"))
        if key in self._keys:
            return True
        self._keys.add(key)
        self._order.append(key)
        if len(self._order) > self._size:
            self._keys.discard(self._order.popleft())
        return False


def topic_filters(root: str = C.DEFAULT_ROOT_PREFIX, device: str | None = None) -> tuple[str, str]:
    """(alert filter, status filter) for the default layout ``<root>/<device>/...``."""
    validate_topic_prefix(root, "--prefix")
    if device is not None:
        validate_device_id(device, "--device")
    middle = device or "+"
    root = root.rstrip("/")
    return f"{root}/{middle}/{C.ALERT_TOPIC}", f"{root}/{middle}/{C.STATUS_TOPIC}"


SHARE_PREFIX = "$share"


def shared_filter(group: str, topic_filter: str, key: str = "--share") -> str:
    """``$share/GROUP/<filter>``; the group is one topic level without wildcards."""
    check_topic_level(group, key)
    return f"{SHARE_PREFIX}/{group}/{topic_filter}"


class AlertSubscriber:
    def __init__(
        self,
        settings: MqttSettings,
        *,
        root: str = C.DEFAULT_ROOT_PREFIX,
        device: str | None = None,
        share: str | None = None,
        client_factory: ClientFactory | None = None,
    ) -> None:
        self.alert_filter, self.status_filter = topic_filters(root, device)
        if share is not None:
            self.alert_filter = shared_filter(share, self.alert_filter)
        client_id = settings.client_id or f"vigil-alerts-{uuid.uuid4().hex[:12]}"
        self._queue: queue.Queue[Received] = queue.Queue()
        self._dedupe = Deduper()
        self.duplicates = 0
        self.invalid = 0
        self.subscribed = threading.Event()  # set once the alert subscription is acknowledged
        self._alert_mid: int | None = None
        self._conn = MqttConnection(
            settings,
            client_id,
            on_connected=self._on_connected,
            on_message=self._on_message,
            on_subscribed=self._on_subscribed,
            client_factory=client_factory,
        )

    @property
    def connected(self) -> bool:
        return self._conn.connected

    @property
    def last_error(self) -> str | None:
        return self._conn.last_error

    @property
    def fatal_refusal(self) -> str | None:
        """Set when the broker refused us for a reason retrying cannot fix."""
        return self._conn.fatal_refusal

    @property
    def where(self) -> str:
        return self._conn.where

    def start(self) -> None:
        self._conn.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._conn.stop(timeout)

    def get(self, timeout: float) -> Received | None:
        """The next new alert or status message, or None after ``timeout`` seconds."""
        try:
            return self._queue.get(timeout=max(0.0, timeout))
        except queue.Empty:
            return None

    def _on_connected(self, _gen: int) -> None:
        # Status first: its retained value tells who is online right now.
        # (SUBACKs are handled on this same paho thread, so _alert_mid is set in time.)
        self._conn.subscribe(self.status_filter, qos=1)
        self._alert_mid = self._conn.subscribe(self.alert_filter, qos=1)

    def _on_subscribed(self, _gen: int, mid: int) -> None:
        if mid == self._alert_mid:
            self.subscribed.set()

    def _on_message(self, topic: str, payload: bytes) -> None:
        try:
            self._receive(topic, payload)
        except Exception as exc:  # a paho callback that raises stops the network loop for good
            self._skip(topic, "?", f"{type(exc).__name__}: {exc}")

    def _skip(self, topic: str, device: str, why: str) -> None:
        self.invalid += 1
        why = why.replace("\n", " ")[:200]
        log.warning("alerts: skipped a message on %s: %s", topic[:200], why)
        self._queue.put(Received("invalid", topic, device, None, why))

    def _receive(self, topic: str, payload: bytes) -> None:
        parts = topic.split("/")
        device = parts[-2] if len(parts) >= 2 else "?"
        if parts[-1] == C.STATUS_TOPIC:
            text = payload[:256].decode("utf-8", errors="replace")
            self._queue.put(Received("status", topic, device, None, text.strip().replace("\n", " ")))
            return
        try:
            data = parse_alert(payload)
        except ValueError as exc:
            self._skip(topic, device, str(exc))
            return
        text = payload.decode("utf-8")
        if self._dedupe.seen(data):
            self.duplicates += 1
            log.info("alerts: duplicate seq %s from %s dropped", data.get("seq"), device)
            return
        self._queue.put(Received("alert", topic, device, data, text))
