"""The operator's side of the command protocol (``vigil deploy``, ``vigil policy``): publish, then follow replies.

One clean MQTT session: subscribe to each target's ``<prefix>/reply`` first
(so no reply is missed), then publish each command QoS 1 on the device's
``<prefix>/cmd/...`` topic and wait for the broker's PUBACK. A device that is
offline gets the command from its persistent session when it returns; the
command is then queued at the broker even if this command gives up waiting.
"""

from __future__ import annotations

import json
import os
import queue
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import typer
from paho.mqtt.enums import CallbackAPIVersion

from edge_agent.errors import VigilInputError
from edge_agent.mqtt import reason
from edge_agent.mqtt.settings import MqttSettings, TlsSettings, validate_device_id
from edge_agent.rollout import protocol as P

CONNECT_TIMEOUT_S = 10.0


def broker_settings(host: str, port: int | None, username: str | None, password: str | None,
                    password_env: str | None, ca: Path | None, cert: Path | None, key: Path | None, tls: bool,
                    protocol: str, topic_prefix: str) -> MqttSettings:
    """The connection options shared by ``vigil deploy`` and ``vigil policy`` (validated like the config's)."""
    if password_env is not None:
        if password_env not in os.environ:
            raise VigilInputError(f"environment variable {password_env} is not set", key="--password-env")
        password = os.environ[password_env]
    tls_settings = None
    if ca or cert or key or tls:
        tls_settings = TlsSettings(ca_file=str(ca) if ca else None, cert_file=str(cert) if cert else None,
                                   key_file=str(key) if key else None)
    return MqttSettings(host=host, port=port, username=username, password=password, tls=tls_settings,
                        protocol=protocol, topic_prefix=topic_prefix)


def new_command_id(command: str) -> str:
    return f"{command}-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"


class CommandClient:
    """Connected on construction; :meth:`follow` subscribes, :meth:`send` publishes, :meth:`replies` yields."""

    def __init__(self, settings: MqttSettings) -> None:
        self.settings = settings
        v5 = settings.protocol == "5"
        self._client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"vigil-operator-{uuid.uuid4().hex[:8]}",
                                   protocol=paho.MQTTv5 if v5 else paho.MQTTv311,
                                   clean_session=None if v5 else True)
        if settings.username is not None:
            self._client.username_pw_set(settings.username, settings.password)
        if settings.tls is not None:
            self._client.tls_set_context(settings.tls.ssl_context("--ca"))
        self._replies: queue.Queue[dict[str, Any]] = queue.Queue()
        self._connected = threading.Event()
        self._subacks: set[int] = set()  # mids of the SUBACKs received (may arrive before subscribe() returns)
        self._refusal: str | None = None
        self.states: dict[str, dict[str, Any]] = {}
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message
        self._client.on_subscribe = self._on_subscribe
        where = f"{settings.host}:{settings.resolved_port}"
        try:
            self._client.connect(settings.host, settings.resolved_port, keepalive=settings.keepalive)
        except Exception as exc:
            raise VigilInputError(reason.describe_exception(exc, settings.host, settings.resolved_port)) from None
        self._client.loop_start()
        if not self._connected.wait(CONNECT_TIMEOUT_S) or self._refusal:
            self.close()
            raise VigilInputError(f"broker {where} refused the connection: {self._refusal}" if self._refusal
                                  else f"no answer from broker {where} within {CONNECT_TIMEOUT_S:g} s")

    def _on_connect(self, _c: Any, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        if reason.is_failure(rc):
            self._refusal = reason.describe_reason(rc)
        self._connected.set()

    def _on_subscribe(self, _c: Any, _u: Any, mid: int, _codes: Any, _p: Any) -> None:
        self._subacks.add(int(mid))

    def _on_message(self, _c: Any, _u: Any, msg: Any) -> None:
        try:
            payload = json.loads(bytes(msg.payload))
        except (UnicodeDecodeError, ValueError, RecursionError):
            return
        if isinstance(payload, dict) and payload.get("format") == P.REPLY_FORMAT:
            self._replies.put(payload)
        elif isinstance(payload, dict) and payload.get("format") == P.STATE_FORMAT:
            self.states[str(payload.get("device"))] = payload  # retained: what each device last said it runs

    def follow(self, devices: list[str]) -> None:
        """Subscribe to every device's reply and retained rollout-state topics and wait for the SUBACKs."""
        mids = []
        for device in devices:
            prefix = self.settings.prefix_for(device)
            for topic in (P.reply_topic(prefix), P.state_topic(prefix)):
                _, mid = self._client.subscribe(topic, qos=P.REPLY_QOS)
                if mid is None:
                    raise VigilInputError("lost the broker connection while subscribing to the reply topics")
                mids.append(int(mid))
        deadline = time.monotonic() + CONNECT_TIMEOUT_S
        while not self._subacks.issuperset(mids):
            if time.monotonic() > deadline:
                raise VigilInputError("the broker did not confirm the subscription to the reply topics")
            time.sleep(0.02)

    def send(self, device: str, payload: bytes, command: str) -> None:
        validate_device_id(device, "--device")
        topic = P.command_topic(self.settings.prefix_for(device), command)
        info = self._client.publish(topic, payload, qos=P.COMMAND_QOS)
        info.wait_for_publish(30.0)
        if not info.is_published():
            raise VigilInputError(f"the broker did not acknowledge the command on {topic}")

    def replies(self, command_ids: set[str], deadline: float) -> Iterator[dict[str, Any]]:
        """Replies to ``command_ids`` until ``deadline`` (monotonic)."""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            try:
                item = self._replies.get(timeout=min(0.25, left))
            except queue.Empty:
                continue
            if item.get("id") in command_ids:
                yield item

    def publish_retained(self, topic: str, payload: str) -> None:
        """Publish ``payload`` retained at QoS 1 and wait for the broker's PUBACK (an empty one clears it)."""
        info = self._client.publish(topic, payload.encode(), qos=1, retain=True)
        info.wait_for_publish(30.0)
        if not info.is_published():
            raise VigilInputError(f"the broker did not acknowledge the retained message on {topic}")

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


def echo_reply(item: dict[str, Any]) -> None:
    """One progress line: ``device  state  details``."""
    details = [f"{k}={item[k]}" for k in ("model_id", "signer", "bytes") if item.get(k) is not None]
    if item.get("bounds"):
        b = item["bounds"]
        details.append(f"probation {b.get('windows')} windows, at most {float(b.get('max_alarm_fraction', 0)):.1%} "
                       "above threshold")
    if item.get("alerts"):
        details.append("alerts " + json.dumps(item["alerts"], separators=(",", ":")))
    if item.get("duplicate"):
        details.append("(already handled)")
    line = f"{item.get('device')}  {item.get('state')}"
    if item.get("reason"):
        line += f": {item['reason']}"
    typer.echo(line + ("  " + " ".join(details) if details else ""))


def last_known(client: CommandClient, device: str) -> str:
    """What the device's retained rollout state says it runs (for a device that did not answer)."""
    state = client.states.get(device)
    if state is None:
        return "never seen on this broker"
    bundle = state.get("bundle")
    model_id = bundle.get("model_id", "?") if isinstance(bundle, dict) else "?"
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(float(state.get("time") or 0)))
    return f"last seen running {model_id} at {when}"
