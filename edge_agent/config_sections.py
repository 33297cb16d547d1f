"""Typed, frozen views of the agent TOML's sections (built by :func:`edge_agent.config.load_config`).

One dataclass per schema section, fields named and ordered like the keys in
:data:`edge_agent.config_schema.SCHEMA` (a test keeps them equal); ``[source]``
is one of the per-kind option classes (``config.source.kind`` tells which).
Paths are absolute :class:`~pathlib.Path` objects or None (unset/off); ``None``
in ``[alerts]`` k/n/m/cooldown/smoothing means "the bundle's recommended
policy". Secrets stay out of ``repr``; read them with :meth:`MqttSection.password_value`
and :meth:`TlsSection.key_password_value` (resolved in one place,
:func:`edge_agent.config_values.read_secret`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, Union

from edge_agent.config_values import read_public_key_file, read_secret
from edge_agent.readers import parse_rows


@dataclass(frozen=True)
class DeviceSection:
    id: str
    description: str


@dataclass(frozen=True)
class BundleSection:
    path: Path | None
    num_threads: int
    #: ``"ed25519:<base64>"`` texts and key files (Path); empty = signatures not required.
    trusted_keys: tuple[str | Path, ...]

    def public_keys(self) -> tuple[str, ...]:
        """Every trusted key as ``ed25519:<base64>`` text (key files read here)."""
        return tuple(key if isinstance(key, str) else read_public_key_file(key, f"bundle.trusted_keys[{i}]")
                     for i, key in enumerate(self.trusted_keys))


@dataclass(frozen=True)
class QualitySection:
    policy: str
    valid_range: tuple[float, float] | None


@dataclass(frozen=True)
class AlertsSection:
    sensitivity: float
    dynamic_threshold: bool
    k: int | None
    n: int | None
    m: int | None
    cooldown: int | None
    smoothing: float | None
    score: str | None
    top_features: int
    sensor_faults: bool
    close_on_shutdown: bool


@dataclass(frozen=True)
class TlsSection:
    enabled: bool
    ca_file: Path | None
    cert_file: Path | None
    key_file: Path | None
    key_password: str = field(repr=False)
    key_password_env: str
    key_password_file: Path | None
    insecure: bool

    @property
    def active(self) -> bool:
        return bool(self.enabled or self.ca_file or self.cert_file or self.insecure)

    def key_password_value(self) -> str | None:
        return read_secret(self.key_password, self.key_password_env, self.key_password_file, "mqtt.tls.key_password")


@dataclass(frozen=True)
class MqttSection:
    host: str
    port: int | None
    client_id: str
    username: str
    password: str = field(repr=False)
    password_env: str
    password_file: Path | None
    protocol: str
    keepalive: int
    topic_prefix: str
    reconnect_min_s: float
    reconnect_max_s: float
    connect_timeout_s: float
    drain_timeout_s: float
    tls: TlsSection

    @property
    def enabled(self) -> bool:
        """A broker is configured (else alerts go to the JSONL/stdout sinks only)."""
        return bool(self.host)

    def password_value(self) -> str | None:
        return read_secret(self.password, self.password_env, self.password_file, "mqtt.password")

    def prefix_for(self, device_id: str) -> str:
        return self.topic_prefix.replace("{device_id}", device_id).rstrip("/")

    def client_id_for(self, device_id: str) -> str:
        return self.client_id or f"vigil-{device_id}"


@dataclass(frozen=True)
class SpoolSection:
    path: Path
    max_messages: int
    max_age_s: float


@dataclass(frozen=True)
class SinksSection:
    jsonl: Path | None
    stdout: bool
    health_jsonl: bool


@dataclass(frozen=True)
class HealthSection:
    interval_s: float


@dataclass(frozen=True)
class LogSection:
    level: str


@dataclass(frozen=True)
class RolloutSection:
    """``[rollout]``: remote deploys and policy (edge_agent.rollout)."""

    enabled: bool
    probation_windows: int
    probation_timeout_s: float
    max_alarm_fraction: float | None
    session_expiry_s: int


@dataclass(frozen=True)
class HomeAssistantSection:
    """``[homeassistant]``: MQTT discovery (edge_agent.homeassistant)."""

    enabled: bool
    discovery_prefix: str
    node_id: str
    device_name: str


@dataclass(frozen=True)
class MetricsSection:
    """``[metrics]``: Prometheus exposition of the health counters (edge_agent.metrics)."""

    mode: str
    textfile: Path | None
    http_host: str
    http_port: int


@dataclass(frozen=True)
class CapturesSection:
    """``[captures]``: raw rows around each alert (edge_agent.captures)."""

    enabled: bool
    path: Path | None
    before_s: float
    after_s: float
    max_rows: int
    max_count: int
    max_bytes: int
    mqtt_pull: bool

# --------------------------------------------------------------------------- [source] per kind


class _SourceOptions:
    kind: str

    def as_table(self) -> dict[str, Any]:
        """``kind`` first, then every key with its effective value (for check-config)."""
        return {"kind": self.kind, **{f.name: _plain(getattr(self, f.name)) for f in fields(self)  # type: ignore[arg-type]
                                      if f.name != "kind"}}


@dataclass(frozen=True)
class ReplayOptions(_SourceOptions):
    kind: Literal["replay"] = field(default="replay", init=False)
    path: Path
    columns: tuple[str, ...]
    rows: str
    timestamp_column: str
    rate_hz: float
    pace: str
    speed: float
    loop: bool
    block_rows: int

    @property
    def row_slice(self) -> tuple[int | None, int | None] | None:
        return parse_rows(self.rows)


@dataclass(frozen=True)
class StdinOptions(_SourceOptions):
    kind: Literal["stdin"] = field(default="stdin", init=False)
    features: tuple[str, ...]  # () = the bundle's features
    rate_hz: float
    delimiter: str


@dataclass(frozen=True)
class SerialOptions(_SourceOptions):
    kind: Literal["serial"] = field(default="serial", init=False)
    port: str
    baudrate: int
    features: tuple[str, ...]  # () = the bundle's features
    rate_hz: float
    delimiter: str
    reconnect_min_s: float
    reconnect_max_s: float


@dataclass(frozen=True)
class Adxl345Options(_SourceOptions):
    kind: Literal["adxl345"] = field(default="adxl345", init=False)
    bus: int
    address: int
    rate_hz: float
    range_g: int
    full_resolution: bool
    retry_min_s: float
    retry_max_s: float
    stall_s: float


@dataclass(frozen=True)
class Mpu6050Options(_SourceOptions):
    kind: Literal["mpu6050"] = field(default="mpu6050", init=False)
    bus: int
    address: int
    rate_hz: float
    range_g: int
    dlpf_hz: str
    retry_min_s: float
    retry_max_s: float
    stall_s: float


@dataclass(frozen=True)
class SyntheticOptions(_SourceOptions):
    kind: Literal["synthetic"] = field(default="synthetic", init=False)
    rate_hz: float
    seed: int
    faults: bool
    n_rows: int
    pace: str
    speed: float
    loop: bool
    block_rows: int


SourceOptions = Union[ReplayOptions, StdinOptions, SerialOptions, Adxl345Options, Mpu6050Options, SyntheticOptions]  # noqa: UP007 (a runtime alias on Python 3.10)
SOURCE_OPTION_CLASSES: dict[str, type[Any]] = {
    "replay": ReplayOptions, "stdin": StdinOptions, "serial": SerialOptions, "adxl345": Adxl345Options,
    "mpu6050": Mpu6050Options, "synthetic": SyntheticOptions,
}
SECTION_CLASSES: dict[str, type[Any]] = {
    "device": DeviceSection, "bundle": BundleSection, "quality": QualitySection, "alerts": AlertsSection,
    "mqtt": MqttSection, "mqtt.tls": TlsSection, "spool": SpoolSection, "sinks": SinksSection,
    "health": HealthSection, "log": LogSection, "rollout": RolloutSection,
    "homeassistant": HomeAssistantSection, "metrics": MetricsSection, "captures": CapturesSection,
}


def _typed(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def build_section(name: str, values: dict[str, Any], **extra: Any) -> Any:
    """The typed section ``name`` from validated values (lists become tuples)."""
    if name == "quality":
        rng = values["valid_range"]
        return QualitySection(values["policy"], (rng[0], rng[1]) if rng else None)
    return SECTION_CLASSES[name](**{k: _typed(v) for k, v in values.items()}, **extra)


def build_source_options(values: dict[str, Any]) -> SourceOptions:
    options: SourceOptions = SOURCE_OPTION_CLASSES[values["kind"]](
        **{k: _typed(v) for k, v in values.items() if k != "kind"})
    return options
