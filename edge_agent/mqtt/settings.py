"""MQTT connection settings: what the connection, the sink and the subscriber need.

Built from the config's typed ``[mqtt]`` section (:meth:`MqttSettings.from_section`,
secrets resolved there) or directly from ``vigil alerts``' command-line
options. The value rules are the config schema's (:mod:`edge_agent.config_values`),
so a value the TOML refuses is refused here with the same message. No paho
import here, so ``check-config`` can validate a config without the edge extra.
Secrets never appear in ``repr`` or :meth:`MqttSettings.to_dict`.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from edge_agent.config_schema import SCHEMA
from edge_agent.config_sections import MqttSection, build_section
from edge_agent.config_values import check_mqtt_tables, check_topic_level, check_topic_prefix, check_value, parse_table
from edge_agent.errors import VigilInputError
from edge_agent.mqtt import constants as C


@dataclass(frozen=True)
class TlsSettings:
    ca_file: str | None = None  # None: the system CA store
    cert_file: str | None = None  # client certificate for mutual TLS
    key_file: str | None = None  # None: the key is inside cert_file
    key_password: str | None = field(default=None, repr=False)
    insecure: bool = False  # skip certificate and host name checks (testing only)

    def validate(self, key: str = "mqtt.tls") -> None:
        for name in ("ca_file", "cert_file", "key_file"):
            value = getattr(self, name)
            if value is not None and not Path(value).is_file():
                raise VigilInputError(f"file not found: {value}", key=f"{key}.{name}")
        if self.key_file and not self.cert_file:
            raise VigilInputError("key_file needs cert_file", key=f"{key}.key_file")

    def ssl_context(self, key: str = "mqtt.tls") -> ssl.SSLContext:
        """Build the client context once; bad files or a wrong key password fail here."""
        self.validate(key)
        try:
            ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=self.ca_file)
        except (ssl.SSLError, OSError) as exc:
            raise VigilInputError(f"cannot load CA file: {exc}", key=f"{key}.ca_file") from None
        if self.cert_file:
            try:
                ctx.load_cert_chain(self.cert_file, self.key_file, password=self.key_password)
            except (ssl.SSLError, OSError) as exc:
                raise VigilInputError(
                    f"cannot load client certificate/key (wrong key_password?): {exc}", key=f"{key}.cert_file"
                ) from None
        if self.insecure:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx


@dataclass(frozen=True)
class MqttSettings:
    host: str
    port: int | None = None  # None: 1883, or 8883 with TLS
    client_id: str | None = None  # None: "vigil-<device_id>" (sink), random (subscriber)
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: TlsSettings | None = None
    # "5" by default: a v5 broker answers a refused publish (ACL) with a reason
    # code, so the alert stays in the spool; a 3.1.1 broker acknowledges and drops it.
    protocol: str = "5"
    keepalive: int = C.DEFAULT_KEEPALIVE_S
    topic_prefix: str = C.DEFAULT_TOPIC_PREFIX
    reconnect_min_s: float = C.DEFAULT_RECONNECT_MIN_S
    reconnect_max_s: float = C.DEFAULT_RECONNECT_MAX_S
    connect_timeout_s: float = C.DEFAULT_CONNECT_TIMEOUT_S

    def __post_init__(self) -> None:
        self.validate()

    @property
    def resolved_port(self) -> int:
        if self.port is not None:
            return self.port
        return C.DEFAULT_TLS_PORT if self.tls is not None else C.DEFAULT_PORT

    def validate(self, key: str = "mqtt") -> None:
        """The config schema's rules for each value (same messages as for the TOML)."""
        validate_host(self.host, f"{key}.host")
        specs = SCHEMA["mqtt"]
        for name in ("port", "protocol", "keepalive", "reconnect_min_s", "reconnect_max_s", "connect_timeout_s"):
            value = getattr(self, name)
            if value is not None:
                check_value(specs[name], value, f"{key}.{name}")
        if self.reconnect_min_s > self.reconnect_max_s:
            raise VigilInputError("must not exceed reconnect_max_s", key=f"{key}.reconnect_min_s")
        if self.client_id is not None and not (0 < len(self.client_id) <= 128):
            raise VigilInputError("must be 1..128 characters", key=f"{key}.client_id")
        if self.password is not None and self.username is None:
            raise VigilInputError("password given without username", key=f"{key}.password")
        check_topic_prefix(self.topic_prefix, f"{key}.topic_prefix")
        if self.tls is not None:
            self.tls.validate(f"{key}.tls")

    @classmethod
    def from_section(cls, mqtt: MqttSection) -> MqttSettings:
        """From the config's typed ``[mqtt]`` (and ``[mqtt.tls]``); secrets are read here."""
        tls = None
        if mqtt.tls.active:
            t = mqtt.tls
            tls = TlsSettings(ca_file=_str(t.ca_file), cert_file=_str(t.cert_file), key_file=_str(t.key_file),
                              key_password=t.key_password_value(), insecure=t.insecure)
        return cls(host=mqtt.host, port=mqtt.port, client_id=mqtt.client_id or None, username=mqtt.username or None,
                   password=mqtt.password_value(), tls=tls, protocol=mqtt.protocol, keepalive=mqtt.keepalive,
                   topic_prefix=mqtt.topic_prefix, reconnect_min_s=mqtt.reconnect_min_s,
                   reconnect_max_s=mqtt.reconnect_max_s, connect_timeout_s=mqtt.connect_timeout_s)

    @classmethod
    def from_dict(cls, table: Mapping[str, Any], *, key: str = "mqtt", base_dir: Path | None = None) -> MqttSettings:
        """A ``[mqtt]`` table (``tls`` = a table or true) through the config schema's one parser."""
        data = dict(table)
        tls_table = data.pop("tls", {})
        if tls_table is True:
            tls_table = {"enabled": True}
        if not isinstance(tls_table, dict):
            raise VigilInputError("must be a table (or true)", key=f"{key}.tls")
        if not data.get("host"):
            raise VigilInputError("missing (the broker host name or address)", key=f"{key}.host")
        values = parse_table(data, SCHEMA["mqtt"], key, base_dir)
        tls_values = parse_table(tls_table, SCHEMA["mqtt.tls"], f"{key}.tls", base_dir)
        check_mqtt_tables(values, tls_values, key)
        return cls.from_section(build_section("mqtt", values, tls=build_section("mqtt.tls", tls_values)))

    def prefix_for(self, device_id: str) -> str:
        """The topic prefix with ``{device_id}`` filled in."""
        validate_device_id(device_id)
        return self.topic_prefix.replace("{device_id}", device_id).rstrip("/")

    def client_id_for(self, device_id: str) -> str:
        return self.client_id or f"vigil-{device_id}"

    def with_(self, **changes: Any) -> MqttSettings:
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Effective settings for printing; secrets redacted."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "password":
                value = "***" if value is not None else None
            elif f.name == "tls" and value is not None:
                value = {k.name: getattr(value, k.name) for k in fields(value)}
                if value["key_password"] is not None:
                    value["key_password"] = "***"
            out[f.name] = value
        out["port"] = self.resolved_port
        return out



def _str(path: Path | None) -> str | None:
    return None if path is None else str(path)


def validate_host(host: Any, key: str = "mqtt.host") -> None:
    if not isinstance(host, str) or not host.strip() or any(c.isspace() for c in host) or "/" in host:
        raise VigilInputError(f"not a host name or address: {host!r}", key=key)


def validate_device_id(device_id: Any, key: str = "device_id") -> None:
    """A device id is one topic level (the config's ``device.id`` rule)."""
    check_topic_level(device_id, key)


def validate_topic_prefix(prefix: Any, key: str = "mqtt.topic_prefix") -> None:
    check_topic_prefix(prefix, key)
