"""The one seam where paho meets the rest: connect, back off, reconnect, callbacks.

Why not paho's own reconnect: ``reconnect_delay_set`` has no jitter (a fleet of
devices would hammer a broker that comes back in lockstep) and a reused client
re-sends its in-memory queue with its own message ids, which would race the
spool replay. So each session uses a fresh paho ``Client`` created with
``reconnect_on_failure=False``; a small supervisor thread connects it, runs
its network loop (``loop_start``) until the session ends, then waits an
exponential backoff with "equal jitter" (a delay drawn from ``[base/2, base]``,
base doubling from ``reconnect_min_s`` up to ``reconnect_max_s``) and tries
again. The backoff is reset only after a connection stayed up
``stable_after_s``: a broker (or proxy) that accepts and then drops every
connection right after CONNACK gets ever slower retries, not two a second.

A connection closed before CONNACK is explained by
:func:`edge_agent.mqtt.diagnose.early_close` (hung broker, missing or expired
client certificate, TLS port without TLS) instead of a generic guess.

paho calls callbacks on its network thread while holding its own locks, so the
callbacks given here must be quick and must not call back into anything that
waits on the caller's locks (the sink only enqueues events).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from edge_agent.mqtt import constants as C
from edge_agent.mqtt import reason
from edge_agent.mqtt.diagnose import early_close
from edge_agent.mqtt.settings import MqttSettings

log = logging.getLogger("vigil.mqtt")

ClientFactory = Callable[[MqttSettings, str], Any]


@dataclass(frozen=True)
class Will:
    topic: str
    payload: str
    qos: int = 1
    retain: bool = True


class Backoff:
    """Exponential backoff with equal jitter: delay in ``[base/2, base]``."""

    def __init__(self, min_s: float, max_s: float, rng: Callable[[], float] = random.random) -> None:
        self.min_s, self.max_s, self._rng = min_s, max_s, rng
        self.attempt = 0

    def next_delay(self) -> float:
        base = float(min(self.max_s, self.min_s * 2.0 ** min(self.attempt, 30)))
        self.attempt += 1
        return base / 2 + self._rng() * base / 2

    def reset(self) -> None:
        self.attempt = 0


def make_paho_client(settings: MqttSettings, client_id: str) -> paho.Client:
    """Default client factory: a bare VERSION2 client for one session."""
    protocol = paho.MQTTv5 if settings.protocol == "5" else paho.MQTTv311
    return paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=protocol,
        clean_session=None if protocol == paho.MQTTv5 else True,
        reconnect_on_failure=False,
    )


def _configure(client: Any, settings: MqttSettings, ssl_context: Any, will: Will | None, max_inflight: int) -> None:
    client.connect_timeout = settings.connect_timeout_s
    if settings.username is not None:
        client.username_pw_set(settings.username, settings.password)
    if ssl_context is not None:
        client.tls_set_context(ssl_context)
    if will is not None:
        client.will_set(will.topic, will.payload, qos=will.qos, retain=will.retain)
    # +2: the status message may be in flight next to a full window of alerts.
    client.max_inflight_messages_set(max_inflight + 2)
    client.max_queued_messages_set(0)  # unbounded: our own window keeps it small


class MqttConnection:
    """Keeps one MQTT session alive in the background; reports through callbacks.

    ``on_connected(gen)``, ``on_disconnected(gen)``, ``on_published(gen, mid,
    reason_value)`` and ``on_message(topic, payload_bytes)`` run on paho's
    thread. ``gen`` numbers the session, so late callbacks of an old session
    can be told apart from the current one.
    """

    def __init__(
        self,
        settings: MqttSettings,
        client_id: str,
        *,
        will: Will | None = None,
        on_connected: Callable[[int], None] | None = None,
        on_disconnected: Callable[[int], None] | None = None,
        on_published: Callable[[int, int, int], None] | None = None,
        on_message: Callable[[str, bytes], None] | None = None,
        on_subscribed: Callable[[int, int], None] | None = None,
        client_factory: ClientFactory | None = None,
        max_inflight: int = 20,
        stable_after_s: float = C.BACKOFF_RESET_AFTER_S,
        connect_options: dict[str, Any] | None = None,
    ) -> None:
        self.settings = settings
        self.stable_after_s = float(stable_after_s)
        self.client_id = client_id
        self._will = will
        self._cb_connected = on_connected
        self._cb_disconnected = on_disconnected
        self._cb_published = on_published
        self._cb_message = on_message
        self._cb_subscribed = on_subscribed
        self._factory = client_factory or make_paho_client
        self._max_inflight = max_inflight
        # Extra paho connect() arguments: the command channel's persistent session (edge_agent.rollout.channel).
        self._connect_options = dict(connect_options or {})
        self._ssl = settings.tls.ssl_context() if settings.tls is not None else None
        self._backoff = Backoff(settings.reconnect_min_s, settings.reconnect_max_s)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._session_over = threading.Event()
        self._thread: threading.Thread | None = None
        self._client: Any = None
        self._disconnected_by_stop: Any = None
        self._stop_grace_s = 5.0
        self._gen = 0
        self._connected = False
        self._session_connected = False
        self._session_failed = False
        self._connect_sent_at = 0.0
        self._connected_at = 0.0
        self.backoff_resets = 0  # connections that stayed up long enough to reset the backoff
        self.connects = 0
        self.connect_failures = 0
        self.last_error: str | None = None
        self.fatal_refusal: str | None = None  # last refusal a retry cannot fix (credentials, ACL)

    # -- public ------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def backoff_attempt(self) -> int:
        """Failed or short-lived sessions in a row (the backoff exponent)."""
        return self._backoff.attempt

    @property
    def reconnects(self) -> int:
        return max(0, self.connects - 1)

    @property
    def where(self) -> str:
        tls = ", TLS" if self._ssl is not None else ""
        return f"{self.settings.host}:{self.settings.resolved_port} (MQTT {self.settings.protocol}{tls})"

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._supervise, name=f"vigil-mqtt-{self.client_id}", daemon=True)
        self._thread.start()

    def publish(
        self, topic: str, payload: str | bytes, qos: int, retain: bool = False, gen: int | None = None
    ) -> int | None:
        """Hand a message to paho; its mid, or None when not connected (or not session ``gen``)."""
        with self._lock:
            client, current = self._client, self._gen
        if client is None or not self._connected or (gen is not None and gen != current):
            return None
        info = client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            return None
        return int(info.mid)

    def subscribe(self, topic: str, qos: int = 1) -> int | None:
        """Send SUBSCRIBE; its mid (matched by ``on_subscribed``) or None when not connected."""
        with self._lock:
            client = self._client
        if client is None:
            return None
        rc, mid = client.subscribe(topic, qos=qos)
        return int(mid) if rc == MQTTErrorCode.MQTT_ERR_SUCCESS else None

    def stop(self, timeout: float = 5.0, final: Will | None = None) -> None:
        """Publish ``final`` (e.g. retained ``offline``) if connected, disconnect cleanly, join."""
        deadline = time.monotonic() + timeout
        self._stop_grace_s = timeout
        self._stopping.set()
        with self._lock:
            client = self._client
        if client is not None and self._connected and final is not None:
            try:
                info = client.publish(final.topic, final.payload, qos=final.qos, retain=final.retain)
                info.wait_for_publish(max(0.1, deadline - time.monotonic()))
            except (RuntimeError, ValueError) as exc:
                log.warning("mqtt: could not publish %s before disconnect: %s", final.topic, exc)
        if client is not None:
            self._disconnected_by_stop = client
            client.disconnect()
        self._session_over.set()
        if self._thread is not None:
            self._thread.join(max(0.1, deadline - time.monotonic()))
            self._thread = None

    # -- supervisor ----------------------------------------------------------------

    def _supervise(self) -> None:
        while not self._stopping.is_set():
            try:
                self._run_session()
            except Exception as exc:  # keep the supervisor alive whatever paho raises
                self._fail(f"unexpected MQTT client error: {type(exc).__name__}: {exc}")
            if self._stopping.is_set():
                break
            delay = self._backoff.next_delay()
            log.info("mqtt: next connection attempt to %s in %.1f s", self.where, delay)
            self._stopping.wait(delay)

    def _run_session(self) -> None:
        with self._lock:
            self._gen += 1
            gen = self._gen
        client = self._factory(self.settings, self.client_id)
        _configure(client, self.settings, self._ssl, self._will, self._max_inflight)
        self._bind(client, gen)
        self._session_over.clear()
        self._session_connected = False
        self._session_failed = False
        try:
            client.connect(self.settings.host, self.settings.resolved_port, keepalive=self.settings.keepalive,
                           **self._connect_options)
        except Exception as exc:
            self._fail(reason.describe_exception(exc, self.settings.host, self.settings.resolved_port))
            return
        self._connect_sent_at = time.monotonic()
        with self._lock:
            self._client = client
        client.loop_start()
        try:
            self._wait_session(gen)
        finally:
            self._end_session(client, gen)

    def _wait_session(self, gen: int) -> None:
        # A broker that accepts TCP but never answers CONNECT would hang us forever.
        connack_deadline = time.monotonic() + self.settings.connect_timeout_s
        while not self._session_over.wait(0.25):
            if self._stopping.is_set():
                # stop() is publishing "offline" on this session; it sets session_over when done.
                self._session_over.wait(self._stop_grace_s)
                return
            if not self._session_connected and time.monotonic() > connack_deadline:
                self._session_failed = True
                self._fail(early_close(self.settings, time.monotonic() - self._connect_sent_at))
                return

    def _end_session(self, client: Any, gen: int) -> None:
        if client is not self._disconnected_by_stop:  # stop() may have raced with a fresh connect
            client.disconnect()
        client.loop_stop()
        with self._lock:
            if self._gen == gen:
                self._client = None
        self._connected = False
        if self._session_connected and time.monotonic() - self._connected_at >= self.stable_after_s:
            self._backoff.reset()
            self.backoff_resets += 1
        if self._session_connected and self._cb_disconnected is not None:
            self._safe(self._cb_disconnected, gen)

    def _fail(self, message: str) -> None:
        self.connect_failures += 1
        self.last_error = message
        log.warning("mqtt: %s", message)

    # -- paho callbacks (paho's thread) ------------------------------------------------

    def _bind(self, client: Any, gen: int) -> None:
        def on_connect(_c: Any, _u: Any, _flags: Any, rc: Any, _props: Any) -> None:
            self._on_connect(gen, rc)

        def on_disconnect(_c: Any, _u: Any, _flags: Any, rc: Any, _props: Any) -> None:
            self._on_disconnect(gen, rc)

        def on_publish(_c: Any, _u: Any, mid: int, rc: Any, _props: Any) -> None:
            if self._cb_published is not None:
                self._safe(self._cb_published, gen, int(mid), reason.code_value(rc))

        def on_message(_c: Any, _u: Any, msg: Any) -> None:
            if self._cb_message is not None:
                self._safe(self._cb_message, msg.topic, bytes(msg.payload))

        def on_subscribe(_c: Any, _u: Any, mid: int, _codes: Any, _props: Any) -> None:
            if self._cb_subscribed is not None:
                self._safe(self._cb_subscribed, gen, int(mid))

        client.on_connect = on_connect
        client.on_disconnect = on_disconnect
        client.on_publish = on_publish
        client.on_message = on_message
        client.on_subscribe = on_subscribe

    def _on_connect(self, gen: int, rc: Any) -> None:
        if reason.is_failure(rc):
            message = f"broker {self.where} refused the connection: {reason.describe_reason(rc)}"
            if reason.is_fatal_refusal(rc):
                self.fatal_refusal = reason.describe_reason(rc)
            self._session_failed = True
            self._fail(message)
            self._session_over.set()  # the broker closes the socket; do not wait for it
            return
        self._connected = True
        self._session_connected = True
        self.connects += 1
        self.last_error = None
        self.fatal_refusal = None
        self._connected_at = time.monotonic()
        log.info("mqtt: connected to %s as %s", self.where, self.client_id)
        if self._cb_connected is not None:
            self._safe(self._cb_connected, gen)

    def _on_disconnect(self, gen: int, rc: Any) -> None:
        was_connected, self._connected = self._connected, False
        if was_connected and not self._stopping.is_set():
            self.last_error = f"connection to {self.where} lost: {_disconnect_text(rc)}"
            log.warning("mqtt: %s", self.last_error)
        elif self._stopping.is_set():
            log.info("mqtt: disconnected from %s", self.where)
        elif not self._session_connected and not self._session_failed:
            # e.g. a TLS listener rejecting our (missing) client certificate right after the handshake
            self._fail(early_close(self.settings, time.monotonic() - self._connect_sent_at))
        self._session_over.set()

    def _safe(self, fn: Callable[..., None], *args: Any) -> None:
        # An exception escaping a callback would kill paho's network thread.
        try:
            fn(*args)
        except Exception as exc:
            log.error("mqtt: callback %s failed: %s: %s", getattr(fn, "__name__", fn), type(exc).__name__, exc)


def _disconnect_text(rc: Any) -> str:
    value = reason.code_value(rc)
    if value == 0:
        return "closed"
    if value >= 0x80 and getattr(rc, "getName", None) is not None:
        return reason.describe_reason(rc) if value != 0x80 else "network error or broker went away"
    return f"code {value}"


def connect_check(
    settings: MqttSettings, client_id: str, timeout: float = 10.0, client_factory: ClientFactory | None = None
) -> str | None:
    """Connect once and disconnect: None when the broker accepts, else one line saying why not.

    For ``check-config --connect`` style callers that must fail fast. Use a
    client id different from the running agent's, or the broker would kick it.
    """
    ssl_context = settings.tls.ssl_context() if settings.tls is not None else None
    client = (client_factory or make_paho_client)(settings, client_id)
    _configure(client, settings.with_(connect_timeout_s=min(timeout, settings.connect_timeout_s)), ssl_context, None, 1)
    answered = threading.Event()
    outcome: list[str | None] = []

    def on_connect(_c: Any, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        outcome.append(reason.describe_reason(rc) if reason.is_failure(rc) else None)
        answered.set()

    def on_disconnect(_c: Any, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        if not answered.is_set():
            outcome.append(early_close(settings, time.monotonic() - sent_at))
            answered.set()

    client.on_connect, client.on_disconnect = on_connect, on_disconnect
    sent_at = time.monotonic()
    try:
        client.connect(settings.host, settings.resolved_port, keepalive=settings.keepalive)
    except Exception as exc:
        return reason.describe_exception(exc, settings.host, settings.resolved_port)
    client.loop_start()
    try:
        if not answered.wait(timeout):
            return early_close(settings.with_(connect_timeout_s=timeout), time.monotonic() - sent_at)
        return outcome[0]
    finally:
        client.disconnect()
        client.loop_stop()
