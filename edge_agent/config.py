"""The agent's one TOML file -> a validated :class:`AgentConfig` of typed sections.

Every problem (unknown key, wrong type, out-of-range value, missing secret,
missing or invalid bundle, a source whose features or rate differ from the
bundle's) is a one-line :class:`VigilInputError` naming the file and key, so
``vigil agent check-config`` and ``vigil agent run`` exit 2 with a message a
person can act on. Relative paths are resolved against the config file's
directory, so a profile and its bundle can travel together. Keys, defaults and
documentation: :mod:`edge_agent.config_schema`; validation:
:mod:`edge_agent.config_values`; the typed sections: :mod:`edge_agent.config_sections`.
What only the device can tell (the interpreter loads the model) is
:func:`edge_agent.config_runtime.check_runtime`.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from edge_agent.bundle import Bundle, load_bundle
from edge_agent.config_schema import SCHEMA, render_config
from edge_agent.config_sections import (
    AlertsSection,
    BundleSection,
    CapturesSection,
    DeviceSection,
    HealthSection,
    HomeAssistantSection,
    LogSection,
    MetricsSection,
    MqttSection,
    QualitySection,
    RolloutSection,
    SerialOptions,
    SinksSection,
    SourceOptions,
    SpoolSection,
    StdinOptions,
    build_section,
)
from edge_agent.config_values import check_mqtt_tables, check_topic_level, fail, parse_table, split_sections
from edge_agent.errors import VigilInputError
from edge_agent.mqtt.settings import MqttSettings
from edge_agent.sources.factory import make_source, parse_source_options

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = ["AgentConfig", "load_config", "mqtt_settings", "read_toml", "render_config"]
#: Relative difference between the source's and the bundle's sampling rate that is still "the same rate".
RATE_TOLERANCE = 0.005


@dataclass(frozen=True)
class AgentConfig:
    """Validated configuration: one typed, frozen object per section.

    ``bundle`` is the loaded bundle when it was checked (the ``[bundle]`` table
    itself is ``bundle_section``). ``values`` is a read-only
    ``values[section][key]`` view of the same data (what check-config prints,
    and :meth:`get` with a dotted key); code reads the typed sections.
    """

    path: Path
    device: DeviceSection
    bundle_section: BundleSection
    source: SourceOptions
    quality: QualitySection
    alerts: AlertsSection
    mqtt: MqttSection
    spool: SpoolSection
    sinks: SinksSection
    health: HealthSection
    log: LogSection
    rollout: RolloutSection = field(default_factory=lambda: build_section(
        "rollout", {k: spec.default for k, spec in SCHEMA["rollout"].items()}))
    homeassistant: HomeAssistantSection = field(default_factory=lambda: _default_section("homeassistant"))
    metrics: MetricsSection = field(default_factory=lambda: _default_section("metrics"))
    captures: CapturesSection = field(default_factory=lambda: _default_section("captures"))
    bundle: Bundle | None = field(default=None, repr=False, compare=False)
    _values: Mapping[str, Mapping[str, Any]] = field(default_factory=dict, repr=False, compare=False)

    @property
    def values(self) -> Mapping[str, Mapping[str, Any]]:
        """Read-only ``values["alerts"]["k"]`` view (paths as Path, unset = None)."""
        return self._values

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def get(self, dotted: str) -> Any:
        section, _, key = dotted.rpartition(".")
        return self._values[section][key]

    @property
    def device_id(self) -> str:
        return self.device.id

    @property
    def broker_enabled(self) -> bool:
        return self.mqtt.enabled

    @property
    def tls_enabled(self) -> bool:
        return self.mqtt.tls.active

    @property
    def topic_prefix(self) -> str:
        return self.mqtt.prefix_for(self.device_id)

    @property
    def client_id(self) -> str:
        return self.mqtt.client_id_for(self.device_id)

    @property
    def summary(self) -> list[str]:
        """Comment lines for check-config: what the bundle is."""
        if self.bundle is None:
            return []
        b = self.bundle
        rate = f"{b.sampling_rate_hz:g} Hz" if b.sampling_rate_hz else "rate unknown"
        return [(f"bundle: model {b.model_id}, features {', '.join(b.features)}, {rate}, window {b.spec.window}, "
                 f"hop {b.spec.hop}, threshold {b.threshold:.6g}, quantization {b.quantization}")]


def _default_section(name: str) -> Any:
    """A section with every key at its default (for an AgentConfig built without that table)."""
    return build_section(name, {k: spec.default for k, spec in SCHEMA[name].items()})


MAX_CONFIG_BYTES = 1 << 20  # a config is a few kB; anything near this is not one


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise VigilInputError("config file not found", file=str(path)) from None
    except OSError as exc:
        raise VigilInputError(f"cannot read config: {exc.strerror or exc}", file=str(path)) from None
    if len(data) > MAX_CONFIG_BYTES:
        raise VigilInputError(f"is larger than {MAX_CONFIG_BYTES} bytes; not an agent config", file=str(path))
    try:
        return tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise VigilInputError(f"not UTF-8 text ({exc.reason})", file=str(path)) from None
    except tomllib.TOMLDecodeError as exc:
        raise VigilInputError(f"not valid TOML: {exc}", file=str(path)) from None
    except RecursionError:  # a deeply nested array or table
        raise VigilInputError("not valid TOML: nested too deeply", file=str(path)) from None
    except ValueError as exc:  # e.g. an integer too long to convert
        raise VigilInputError(f"not a usable TOML value: {str(exc)[:120]}", file=str(path)) from None


def load_config(
    path: str | Path, *, check_bundle: bool = True, check_source: bool = True, check_files: bool = True
) -> AgentConfig:
    """Read, validate and complete a config file.

    ``check_bundle`` loads the bundle, ``check_source`` builds the source and
    compares its features and rate with the bundle's, ``check_files`` reads the
    secrets, trusted keys and TLS files (off when packaging elsewhere).
    """
    path = Path(path).expanduser().resolve()
    raw = read_toml(path)
    try:
        config = _build(raw, path)
        if check_files:
            _check_files(config)
        if check_bundle:
            config = _with_bundle(config, check_source)
    except VigilInputError as exc:
        if exc.file is not None:
            raise
        raise VigilInputError(exc.detail, file=str(path), row=exc.row, column=exc.column, key=exc.key) from None
    return config


# --------------------------------------------------------------------------- build


def _build(raw: dict[str, Any], path: Path) -> AgentConfig:
    tables = split_sections(raw)
    values: dict[str, dict[str, Any]] = {name: parse_table(tables[name], SCHEMA[name], name, path.parent)
                                         for name in SCHEMA}
    values["device"]["id"] = check_topic_level(values["device"]["id"] or _host_name(), "device.id")
    values["spool"]["path"] = values["spool"]["path"] or default_spool_path(path.parent)
    _cross_checks(values)
    source = parse_source_options(tables["source"], path.parent)
    sections = {name: build_section(name, values[name]) for name in SCHEMA if name not in ("mqtt", "mqtt.tls")}
    tls = build_section("mqtt.tls", values["mqtt.tls"])
    return AgentConfig(path=path, **{("bundle_section" if k == "bundle" else k): v for k, v in sections.items()},
                       mqtt=build_section("mqtt", values["mqtt"], tls=tls), source=source,
                       _values=_view(values, source))


def _view(values: dict[str, dict[str, Any]], source: SourceOptions) -> Mapping[str, Mapping[str, Any]]:
    tables = {name: MappingProxyType(dict(table)) for name, table in values.items()}
    tables["source"] = MappingProxyType(source.as_table())
    return MappingProxyType(tables)


def _host_name() -> str:
    return socket.gethostname().split(".")[0] or "vigil"


def default_spool_path(base_dir: Path) -> Path:
    """``$STATE_DIRECTORY/spool.db`` under systemd, else ``<config dir>/vigil-state/spool.db``."""
    state = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
    return (Path(state) if state else base_dir / "vigil-state") / "spool.db"


def _cross_checks(values: dict[str, dict[str, Any]]) -> None:
    alerts = values["alerts"]
    if (alerts["k"] is None) != (alerts["n"] is None):
        given, other = ("k", "n") if alerts["n"] is None else ("n", "k")
        raise fail(f"alerts.{other}", f"set k and n together (alerts.{given} is set); unset both for the "
                   "bundle's recommended policy")
    if alerts["k"] is not None and alerts["k"] > alerts["n"]:
        raise fail("alerts.k", f"k = {alerts['k']} must not exceed n = {alerts['n']}")
    check_mqtt_tables(values["mqtt"], values["mqtt.tls"])


def _check_files(config: AgentConfig) -> None:
    """Files and secrets exist and can be read; TLS material loads (a wrong passphrase shows here)."""
    mqtt, tls = config.mqtt, config.mqtt.tls
    files = {"mqtt.password_file": mqtt.password_file, "mqtt.tls.ca_file": tls.ca_file,
             "mqtt.tls.cert_file": tls.cert_file, "mqtt.tls.key_file": tls.key_file,
             "mqtt.tls.key_password_file": tls.key_password_file}
    for dotted, file in files.items():
        if file is not None and not file.is_file():
            raise fail(dotted, f"file not found: {file}")
    config.bundle_section.public_keys()
    settings = mqtt_settings(config)  # reads the secrets
    if settings is not None and settings.tls is not None:
        settings.tls.ssl_context()


def mqtt_settings(config: AgentConfig) -> MqttSettings | None:
    """:class:`edge_agent.mqtt.settings.MqttSettings` for ``[mqtt]`` (secrets resolved), or None."""
    if not config.mqtt.enabled:
        return None
    try:
        return MqttSettings.from_section(config.mqtt)
    except VigilInputError as exc:
        raise VigilInputError(exc.detail, file=str(config.path), key=exc.key or "mqtt") from None


# --------------------------------------------------------------------------- bundle and source


def _with_bundle(config: AgentConfig, check_source: bool) -> AgentConfig:
    bundle_path = config.bundle_section.path
    if bundle_path is None:
        raise fail("bundle.path", 'missing: set path = "model.vigil" in [bundle]')
    trusted = list(config.bundle_section.public_keys())  # [] = signatures not required
    try:
        bundle = load_bundle(bundle_path, trusted_keys=trusted)
    except VigilInputError as exc:
        key = exc.key if exc.key == "bundle.trusted_keys" else "bundle.path"
        # The config names the key already: the bundle's own error adds only its file, not the key again.
        detail = f"{exc.file}: {exc.detail}" if exc.key == key and exc.file else str(exc)
        raise fail(key, detail) from None
    config = replace(config, bundle=bundle)
    if isinstance(config.source, (StdinOptions, SerialOptions)) and not config.source.features:
        source = replace(config.source, features=tuple(bundle.input_features))  # the bundle's, as documented
        config = replace(config, source=source, _values=MappingProxyType(
            {**config.values, "source": MappingProxyType(source.as_table())}))
    if check_source:
        check_source_against_bundle(config, bundle)
    return config


def make_configured_source(config: AgentConfig, bundle: Bundle | None = None) -> Any:
    """The source described by ``[source]`` (not opened); stdin/serial default to the bundle's features."""
    bundle = bundle or config.bundle
    return make_source(config.source, default_features=None if bundle is None else list(bundle.input_features))


def check_source_against_bundle(config: AgentConfig, bundle: Bundle) -> None:
    """Build the source (without opening a device): its features and rate must be the bundle's."""
    made = make_configured_source(config, bundle)
    features = list(getattr(made, "features", None) or [])
    if features:
        compare_features(features, bundle, config.path, feature_key(config.source))
    compare_rate(made.sampling_rate_hz, bundle, config.path)


def compare_rate(rate_hz: float | None, bundle: Bundle, path: Path) -> None:
    """The model learned one sampling rate: a window at another rate spans another time (and spectrum)."""
    want = bundle.sampling_rate_hz
    if not rate_hz or not want or abs(rate_hz - want) <= RATE_TOLERANCE * want:
        return
    raise VigilInputError(f"the source samples at {rate_hz:g} Hz but the bundle was trained at {want:g} Hz "
                          "(set source.rate_hz to the bundle's rate, or train a bundle at this rate)",
                          file=str(path), key="source.rate_hz")


def feature_key(source: Any) -> str:
    """The ``[source]`` key that sets the features (for error messages)."""
    if getattr(source, "columns", None):
        return "source.columns"
    if getattr(source, "features", None):
        return "source.features"
    return "source"


def compare_features(features: list[str], bundle: Bundle, path: Path, key: str) -> None:
    """Name by name: the model's inputs are positional, so order matters too.

    The source delivers the sensor columns (``bundle.input_features``): for a spectral bundle those are
    the raw axes, not the frame features the model sees.
    """
    expected = list(bundle.input_features)
    if list(features) == expected:
        return
    if len(features) != len(expected):
        detail = (f"source has {len(features)} features {features}, "
                  f"the bundle needs {len(expected)} {expected}")
    else:
        i = next(i for i, (a, b) in enumerate(zip(features, expected, strict=False)) if a != b)
        detail = (f"source feature {i} is {features[i]!r} but the bundle expects {expected[i]!r} "
                  f"(source {features}, bundle {expected})")
    raise VigilInputError(detail, file=str(path), key=key)
