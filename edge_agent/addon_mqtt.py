"""The add-ons' own MQTT connection: Home Assistant discovery + state, and capture pulls.

A second client (``<client_id>-ext``) next to the alert sink's, so nothing
here can delay or reorder alert delivery, and the sink stays as it is. It has
no Last Will: availability is the sink's retained ``status`` topic.

paho's thread only enqueues; one worker thread ("vigil-addons") publishes
the discovery configs on each connection, answers HA's birth message and
serves capture requests. A capture is sent in chunks with at most
``WINDOW`` of them awaiting PUBACK, so a pull of a large directory never sits
in memory at once.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from typing import Any

from edge_agent import capture_protocol as P
from edge_agent.captures import CaptureStore
from edge_agent.homeassistant import Discovery, HaState
from edge_agent.mqtt.connection import ClientFactory, MqttConnection
from edge_agent.mqtt.reason import describe_reason
from edge_agent.mqtt.settings import MqttSettings

log = logging.getLogger("vigil.addons.mqtt")

WINDOW = 8  # capture chunks awaiting PUBACK at once
ACK_TIMEOUT_S = 30.0
STATE_QOS = 1


class AddonLink:
    """Owns the connection and the worker; :meth:`publish_state` may be called from any thread."""

    def __init__(self, settings: MqttSettings, client_id: str, prefix: str, *, discovery: Discovery | None,
                 state: HaState | None, store: CaptureStore | None, client_factory: ClientFactory | None = None,
                 ) -> None:
        self.prefix = prefix
        self.discovery = discovery
        self.state = state
        self.store = store
        self._events: queue.Queue[tuple[Any, ...]] = queue.Queue()
        self._acked = threading.Condition()
        self._published = 0
        self._acks = 0
        self.requests = 0
        self.refused = 0
        self.discovery_published = 0
        self.rejected = 0
        self._conn = MqttConnection(
            settings, client_id[:128],
            on_connected=lambda gen: self._events.put(("connected", gen)),
            on_message=lambda topic, payload: self._events.put(("message", topic, payload)),
            on_published=self._on_published,
            client_factory=client_factory,
        )
        self._worker: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------

    def start(self) -> None:
        self._worker = threading.Thread(target=self._run, name="vigil-addons", daemon=True)
        self._worker.start()
        self._conn.start()

    def stop(self, timeout: float = 3.0) -> None:
        self._events.put(("stop",))
        if self._worker is not None:
            self._worker.join(timeout)
            self._worker = None
        # The last state (an event closed at shutdown) should reach the broker before we disconnect.
        deadline = time.monotonic() + timeout / 2
        with self._acked:
            while self._published > self._acks and self._conn.connected and time.monotonic() < deadline:
                self._acked.wait(0.05)
        self._conn.stop(timeout=timeout)

    @property
    def connected(self) -> bool:
        return self._conn.connected

    # -- called by the agent ------------------------------------------------------------

    def publish_state(self) -> None:
        if self.discovery is not None and self.state is not None:
            self._publish(self.discovery.state_topic, self.state.payload(), retain=True)

    def republish_discovery(self, discovery: Discovery) -> None:
        """A new bundle: new ``model_id`` / ``sw_version`` in the device block."""
        self.discovery = discovery
        self._events.put(("discovery",))

    # -- worker -------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            event = self._events.get()
            if event[0] == "stop":
                return
            try:
                self._handle(event)
            except Exception as exc:  # the worker must survive a bad request or a full disk
                self.refused += 1
                log.error("add-on MQTT worker: %s: %s", type(exc).__name__, exc)

    def _handle(self, event: tuple[Any, ...]) -> None:
        kind = event[0]
        if kind == "connected":
            with self._acked:
                self._acks = self._published  # PUBACKs of the old session will not come
            if self.discovery is not None:
                self._conn.subscribe(self.discovery.birth_topic, qos=1)
                self._publish_discovery()
            if self.store is not None:
                self._conn.subscribe(P.request_topic(self.prefix), qos=P.REQUEST_QOS)
        elif kind == "discovery":
            self._publish_discovery()
        elif kind == "message":
            topic, payload = event[1], bytes(event[2])
            if self.discovery is not None and topic == self.discovery.birth_topic:
                if payload.strip() == b"online":  # HA restarted: it asks devices to announce themselves
                    self._publish_discovery()
            elif self.store is not None and topic == P.request_topic(self.prefix):
                self._serve(payload)

    def _publish_discovery(self) -> None:
        if self.discovery is None:
            return
        for topic, text in self.discovery.messages():
            self._publish(topic, text, retain=True)
        self.discovery_published += 1
        self.publish_state()
        log.info("homeassistant: discovery published under %s/+/%s/", self.discovery.discovery_prefix,
                 self.discovery.node_id)

    # -- captures -------------------------------------------------------------------------

    def _serve(self, payload: bytes) -> None:
        assert self.store is not None
        self.requests += 1
        try:
            request_id, op, name = P.parse_request(payload)
        except ValueError as exc:
            self.refused += 1
            rid = _request_id_of(payload)
            log.warning("captures: refused a request: %s", exc)
            if rid is not None:
                self._reply({"request_id": rid, "error": str(exc)})
            return
        if op == "list":
            listing = [{"name": n, "files": self.store.sizes(n)} for n in self.store.names()]
            self._reply({"request_id": request_id, "op": "list", "captures": listing})
            return
        assert name is not None
        if name not in self.store.names():
            self.refused += 1
            self._reply({"request_id": request_id, "error": f"no capture named {name}"})
            return
        for file, path in self.store.files(name).items():
            data = path.read_bytes()
            for message in P.chunk_messages(request_id, name, file, data):
                if not self._wait_window():
                    log.warning("captures: transfer of %s abandoned (no PUBACK within %.0f s)", name, ACK_TIMEOUT_S)
                    return
                self._reply(message)
        log.info("captures: sent %s for request %s", name, request_id)

    def _reply(self, message: dict[str, Any]) -> None:
        self._publish(P.reply_topic(self.prefix), P.encode(message), retain=False)

    def _publish(self, topic: str, text: str, retain: bool) -> None:
        # Not under self._acked: paho calls _on_published holding its own message lock, which publish()
        # needs too, so holding ours across publish() deadlocked against an arriving PUBACK.
        mid = self._conn.publish(topic, text, qos=STATE_QOS, retain=retain)
        if mid is not None:
            with self._acked:
                self._published += 1

    def _on_published(self, _gen: int, _mid: int, rc: int) -> None:
        if rc >= 0x80:  # MQTT 5: the broker refused it, most likely its ACL
            self.rejected += 1
            if self.rejected in (1, 10) or self.rejected % 1000 == 0:
                log.error("add-on MQTT: the broker refused %d publish(es) (%s); its ACL must let this device write "
                          "the HA discovery topics and %s/state, %s", self.rejected, describe_reason(rc),
                          self.prefix, P.reply_topic(self.prefix))
        with self._acked:
            self._acks += 1
            self._acked.notify_all()

    def _wait_window(self) -> bool:
        deadline = time.monotonic() + ACK_TIMEOUT_S
        with self._acked:
            while self._published - self._acks >= WINDOW:
                left = deadline - time.monotonic()
                if left <= 0 or not self._conn.connected:
                    return False
                self._acked.wait(min(left, 0.25))
        return True


def _request_id_of(payload: bytes) -> str | None:
    try:
        rid = json.loads(payload.decode("utf-8")).get("request_id")
    except (UnicodeDecodeError, ValueError, AttributeError):
        return None
    return rid if isinstance(rid, str) and len(rid) <= 64 else None
