"""MQTT connection settings: dataclasses, validation and the TOML-table parser.

No paho import here, so ``check-config`` can validate a config without the
edge extra. Errors are :class:`VigilInputError` naming the key
(``mqtt.port``, ``mqtt.tls.ca_file``...). Secrets (``password``,
``tls.key_password``) may be given inline, as ``<name>_env`` (an environment
variable name) or ``<name>_file`` (a file whose first line is the secret);
they never appear in ``repr`` or :meth:`MqttSettings.to_dict`.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

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
        validate_host(self.host, f"{key}.host")
        if self.port is not None:
            validate_port(self.port, f"{key}.port")
        if self.protocol not in C.PROTOCOLS:
            choices = ", ".join(C.PROTOCOLS)
            raise VigilInputError(f"must be one of {choices}, got {self.protocol!r}", key=f"{key}.protocol")
        _check_range(self.keepalive, 5, 65535, f"{key}.keepalive")
        _check_range(self.reconnect_min_s, 0.01, 3600, f"{key}.reconnect_min_s")
        _check_range(self.reconnect_max_s, self.reconnect_min_s, 86400, f"{key}.reconnect_max_s")
        _check_range(self.connect_timeout_s, 0.1, 600, f"{key}.connect_timeout_s")
        if self.client_id is not None and not (0 < len(self.client_id) <= 128):
            raise VigilInputError("must be 1..128 characters", key=f"{key}.client_id")
        if self.password is not None and self.username is None:
            raise VigilInputError("password given without username", key=f"{key}.password")
        validate_topic_prefix(self.topic_prefix, f"{key}.topic_prefix")
        if self.tls is not None:
            self.tls.validate(f"{key}.tls")

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

    @classmethod
    def from_dict(cls, table: dict[str, Any], *, key: str = "mqtt", base_dir: Path | None = None) -> MqttSettings:
        """Parse a ``[mqtt]`` TOML table (unknown keys are errors); paths are relative to ``base_dir``."""
        data = dict(table)
        tls_table = data.pop("tls", None)
        password = _secret(data, "password", key)
        names = {f.name for f in fields(cls)} - {"tls", "password"}
        _reject_unknown(data, names, key)
        if "host" not in data:
            raise VigilInputError("missing (the broker host name or address)", key=f"{key}.host")
        for name, value in data.items():
            _check_type(name, value, key)
        tls = _tls_from_dict(tls_table, f"{key}.tls", base_dir) if tls_table is not None else None
        if "protocol" in data:
            data["protocol"] = str(data["protocol"])
        return cls(**data, password=password, tls=tls)


def validate_host(host: Any, key: str = "mqtt.host") -> None:
    if not isinstance(host, str) or not host.strip() or any(c.isspace() for c in host) or "/" in host:
        raise VigilInputError(f"not a host name or address: {host!r}", key=key)


def validate_port(port: Any, key: str = "mqtt.port") -> None:
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise VigilInputError(f"must be an integer 1..65535, got {port!r}", key=key)


def validate_device_id(device_id: Any, key: str = "device_id") -> None:
    bad = not isinstance(device_id, str) or not device_id or device_id != device_id.strip()
    if bad or any(c in device_id for c in "/+#"):
        raise VigilInputError(f"must be non-empty without '/', '+', '#' or surrounding spaces: {device_id!r}", key=key)


def validate_topic_prefix(prefix: Any, key: str = "mqtt.topic_prefix") -> None:
    if not isinstance(prefix, str) or not prefix.strip("/"):
        raise VigilInputError("must be a non-empty topic like 'vigil/{device_id}'", key=key)
    if "+" in prefix or "#" in prefix or prefix.startswith("$"):
        raise VigilInputError(f"must not contain wildcards or start with '$': {prefix!r}", key=key)
    if prefix.replace("{device_id}", "").count("{") or prefix.replace("{device_id}", "").count("}"):
        raise VigilInputError(f"the only placeholder allowed is {{device_id}}: {prefix!r}", key=key)


_TYPES: dict[str, tuple[type, ...]] = {
    "host": (str,),
    "port": (int,),
    "client_id": (str,),
    "username": (str,),
    "protocol": (str, int, float),
    "keepalive": (int,),
    "topic_prefix": (str,),
    "reconnect_min_s": (int, float),
    "reconnect_max_s": (int, float),
    "connect_timeout_s": (int, float),
    "ca_file": (str,),
    "cert_file": (str,),
    "key_file": (str,),
    "insecure": (bool,),
}


def _check_type(name: str, value: Any, key: str) -> None:
    allowed = _TYPES.get(name, (object,))
    if (isinstance(value, bool) and bool not in allowed) or not isinstance(value, allowed):
        kinds = " or ".join(t.__name__ for t in allowed)
        raise VigilInputError(f"must be {kinds}, got {type(value).__name__}", key=f"{key}.{name}")


def _check_range(value: float, low: float, high: float, key: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise VigilInputError(f"must be a number in {low}..{high}, got {value!r}", key=key)


def _reject_unknown(data: dict[str, Any], known: set[str], key: str) -> None:
    for name in data:
        if name not in known:
            raise VigilInputError(f"unknown key (known: {', '.join(sorted(known))})", key=f"{key}.{name}")


def _secret(data: dict[str, Any], name: str, key: str) -> str | None:
    """Pop ``name`` / ``name_env`` / ``name_file`` from ``data``; at most one may be set."""
    given = [n for n in (name, f"{name}_env", f"{name}_file") if n in data]
    if len(given) > 1:
        raise VigilInputError(f"give only one of {', '.join(given)}", key=f"{key}.{given[1]}")
    if not given:
        return None
    which = given[0]
    value = data.pop(which)
    if not isinstance(value, str):
        raise VigilInputError("must be a string", key=f"{key}.{which}")
    if which.endswith("_env"):
        if value not in os.environ:
            raise VigilInputError(f"environment variable {value} is not set", key=f"{key}.{which}")
        return os.environ[value]
    if which.endswith("_file"):
        try:
            lines = Path(value).read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            message = f"cannot read secret file: {exc.strerror}"
            raise VigilInputError(message, file=value, key=f"{key}.{which}") from None
        return lines[0] if lines else ""
    return value


def _tls_from_dict(table: Any, key: str, base_dir: Path | None) -> TlsSettings:
    if table is True:  # `tls = true`: TLS with the system CA store
        return TlsSettings()
    if not isinstance(table, dict):
        raise VigilInputError("must be a table (or true)", key=key)
    data = dict(table)
    key_password = _secret(data, "key_password", key)
    _reject_unknown(data, {f.name for f in fields(TlsSettings)} - {"key_password"}, key)
    for name, value in data.items():
        _check_type(name, value, key)
        if name.endswith("_file") and base_dir is not None:
            data[name] = str((base_dir / value).resolve()) if not Path(value).is_absolute() else value
    return TlsSettings(**data, key_password=key_password)
