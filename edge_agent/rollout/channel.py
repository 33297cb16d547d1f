"""The agent's command connection: its own command topics in, replies and the retained rollout state out.

A second MQTT connection beside the alert sink's, with client id
``<client id>-cmd`` and a *persistent* session (MQTT 5: clean start off and a
session expiry of ``[rollout] session_expiry_s``; MQTT 3.1.1: clean session
off), so a deploy published while the device is offline is queued by the
broker and delivered when it comes back. The alert sink keeps its clean
session on purpose (its spool, not the broker, holds what is unsent), which is
why commands do not share its connection.

paho calls ``on_message`` on its network thread; messages only go into a
queue here, and the agent's loop takes them (:meth:`CommandChannel.take`), so a
bundle swap never races the pipeline. Replies published while disconnected
wait in a small outbox and go out, in order, after the next connect.
"""

from __future__ import annotations

import json
import logging
import queue
from collections import deque
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge_agent.mqtt.connection import MqttConnection
from edge_agent.mqtt.settings import MqttSettings
from edge_agent.rollout import protocol as P

log = logging.getLogger("vigil.rollout")

OUTBOX_LIMIT = 200
INBOX_LIMIT = 16  # a flood of commands must not pile up bundles in memory


def _persistent_client(settings: MqttSettings, client_id: str) -> paho.Client:
    v5 = settings.protocol == "5"
    return paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                       protocol=paho.MQTTv5 if v5 else paho.MQTTv311,
                       clean_session=None if v5 else False, reconnect_on_failure=False)


def _session_options(settings: MqttSettings, expiry_s: int) -> dict[str, Any]:
    if settings.protocol != "5":
        return {}
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = int(expiry_s)
    return {"clean_start": False, "properties": props}


class CommandChannel:
    """Subscribes to ``<prefix>/cmd/+``; :meth:`take` hands the loop one ``(topic, payload)`` at a time."""

    def __init__(self, settings: MqttSettings, device_id: str, session_expiry_s: int) -> None:
        self.device_id = device_id
        self.prefix = settings.prefix_for(device_id)
        self.filter = P.command_filter(self.prefix)
        self.reply_topic = P.reply_topic(self.prefix)
        self.state_topic = P.state_topic(self.prefix)
        self._inbox: queue.Queue[tuple[str, bytes]] = queue.Queue(INBOX_LIMIT)
        self._outbox: deque[tuple[str, str, bool]] = deque(maxlen=OUTBOX_LIMIT)
        self._state_text: str | None = None
        self._resend_state = False
        self.dropped = 0
        self._conn = MqttConnection(
            settings, f"{settings.client_id_for(device_id)}-cmd"[:128],
            on_connected=self._on_connected, on_message=self._on_message,
            client_factory=_persistent_client, connect_options=_session_options(settings, session_expiry_s),
        )

    @property
    def connected(self) -> bool:
        return self._conn.connected

    def start(self) -> None:
        self._conn.start()

    def stop(self, timeout: float = 2.0) -> None:
        self.flush()
        self._conn.stop(timeout=timeout)

    # -- paho thread ----------------------------------------------------------------

    def _on_connected(self, _gen: int) -> None:
        self._conn.subscribe(self.filter, qos=P.COMMAND_QOS)
        self._resend_state = True

    def _on_message(self, topic: str, payload: bytes) -> None:
        try:
            self._inbox.put_nowait((topic, payload))
        except queue.Full:
            self.dropped += 1
            log.error("rollout: command on %s dropped: %d commands already waiting", topic, INBOX_LIMIT)

    # -- agent loop ------------------------------------------------------------------

    def take(self) -> tuple[str, bytes] | None:
        try:
            return self._inbox.get_nowait()
        except queue.Empty:
            return None

    def reply(self, payload: dict[str, Any]) -> None:
        log.info("rollout: %s %s -> %s%s", payload.get("command"), payload.get("id"), payload.get("state"),
                 f" ({payload['reason']})" if payload.get("reason") else "")
        self._outbox.append((self.reply_topic, json.dumps(payload, separators=(",", ":")), False))
        self.flush()

    def publish_state(self, payload: dict[str, Any]) -> None:
        """The retained ``<prefix>/rollout`` message (sent again after every reconnect)."""
        self._state_text = json.dumps(payload, separators=(",", ":"))
        self._resend_state = True
        self.flush()

    def flush(self) -> None:
        if not self._conn.connected:
            return
        if self._resend_state and self._state_text is not None:
            if self._conn.publish(self.state_topic, self._state_text, qos=P.REPLY_QOS, retain=True) is not None:
                self._resend_state = False
        while self._outbox:
            topic, text, retain = self._outbox[0]
            if self._conn.publish(topic, text, qos=P.REPLY_QOS, retain=retain) is None:
                return
            self._outbox.popleft()
