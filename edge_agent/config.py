"""The agent's one TOML file -> a validated :class:`AgentConfig`.

Every problem (unknown key, wrong type, out-of-range value, missing secret,
missing or invalid bundle, a source whose features differ from the bundle's)
is a one-line :class:`VigilInputError` naming the key, so ``vigil agent
check-config`` and ``vigil agent run`` exit 2 with a message a person can act
on. Relative paths are resolved against the config file's directory, so a
profile and its bundle can travel together. Keys, defaults and documentation
live in :mod:`edge_agent.config_schema`.
"""

from __future__ import annotations

import math
import os
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_agent.bundle import Bundle, load_bundle
from edge_agent.config_schema import OPEN_SECTIONS, SCHEMA, SECTION_ORDER, Key, render_config
from edge_agent.errors import VigilInputError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

_TOPIC_FORBIDDEN = set("+#\0")
__all__ = ["AgentConfig", "load_config", "mqtt_settings", "read_toml", "render_config"]


@dataclass(frozen=True)
class AgentConfig:
    """Validated configuration: ``values[section][key]`` with defaults filled in.

    Paths are absolute :class:`Path` objects (or None when unset/empty).
    ``source`` is the raw ``[source]`` table (with the factory's defaults merged
    for display); ``bundle`` is the loaded bundle when it was checked.
    """

    path: Path
    values: dict[str, dict[str, Any]]
    source: dict[str, Any]
    bundle: Bundle | None = field(default=None, repr=False, compare=False)

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def get(self, dotted: str) -> Any:
        section, _, key = dotted.rpartition(".")
        return self.values[section][key]

    @property
    def device_id(self) -> str:
        return str(self.values["device"]["id"])

    @property
    def broker_enabled(self) -> bool:
        return bool(self.values["mqtt"]["host"])

    @property
    def tls_enabled(self) -> bool:
        tls = self.values["mqtt.tls"]
        return bool(tls["enabled"] or tls["ca_file"] or tls["cert_file"] or tls["insecure"])

    @property
    def topic_prefix(self) -> str:
        return str(self.values["mqtt"]["topic_prefix"]).replace("{device_id}", self.device_id).rstrip("/")

    @property
    def client_id(self) -> str:
        return str(self.values["mqtt"]["client_id"] or f"vigil-{self.device_id}")


def _fail(message: str, config: Path, key: str) -> VigilInputError:
    return VigilInputError(message, file=str(config), key=key)


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise VigilInputError("config file not found", file=str(path)) from None
    except OSError as exc:
        raise VigilInputError(f"cannot read config: {exc.strerror or exc}", file=str(path)) from None
    except tomllib.TOMLDecodeError as exc:
        raise VigilInputError(f"not valid TOML: {exc}", file=str(path)) from None
    except UnicodeDecodeError as exc:
        raise VigilInputError(f"not UTF-8 text ({exc.reason})", file=str(path)) from None


def load_config(
    path: str | Path, *, check_bundle: bool = True, check_source: bool = True, check_files: bool = True
) -> AgentConfig:
    """Read, validate and complete a config file.

    ``check_bundle`` loads the bundle, ``check_source`` builds the source and
    compares its features with the bundle's, ``check_files`` reads the secrets
    and checks that TLS/password files exist (off when packaging elsewhere).
    """
    path = Path(path).expanduser().resolve()
    raw = read_toml(path)
    values, source = _validate_tree(raw, path)
    _cross_checks(values, path)
    if check_files:
        _check_files(values, path)
    bundle = None
    if check_bundle:
        bundle = _load_bundle(values, path)
        if check_source:
            check_source_features(source, bundle, path)
    config = AgentConfig(path=path, values=values, source=_source_with_defaults(source, bundle, path), bundle=bundle)
    if check_files:
        settings = mqtt_settings(config)  # validates the broker settings (and reads the secrets) once
        if settings is not None and settings.tls is not None:
            try:  # a wrong key passphrase or a bad PEM shows up here, not at the first connect
                settings.tls.ssl_context()
            except VigilInputError as exc:
                raise VigilInputError(exc.detail, file=str(path), key=exc.key or "mqtt.tls") from None
    return config


# --------------------------------------------------------------------------- tree and values


def _validate_tree(raw: dict[str, Any], path: Path) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    known = set(SCHEMA) | set(OPEN_SECTIONS) | {"mqtt"}
    for name in raw:
        if name not in known or (name in SCHEMA and not isinstance(raw[name], dict)):
            kind = "unknown section" if name not in known else "must be a table"
            raise _fail(f"{kind} [{name}]; known: {', '.join(SECTION_ORDER)}", path, name)
    mqtt = dict(raw.get("mqtt", {}))
    tables = {name: raw.get(name, {}) for name in SCHEMA}
    tables["mqtt"] = {k: v for k, v in mqtt.items() if k != "tls"}
    tables["mqtt.tls"] = mqtt.get("tls", {})
    if not isinstance(tables["mqtt.tls"], dict):
        raise _fail("must be a table ([mqtt.tls])", path, "mqtt.tls")
    values = {name: _section(name, tables[name], path) for name in SCHEMA}
    source = raw.get("source", {})
    if not isinstance(source, dict) or not source:
        raise _fail("missing [source] table (with at least kind = ...)", path, "source")
    values["device"]["id"] = _device_id(values["device"]["id"], path)
    values["spool"]["path"] = values["spool"]["path"] or default_spool_path(path.parent)
    return values, dict(source)


def _section(name: str, table: dict[str, Any], path: Path) -> dict[str, Any]:
    spec = SCHEMA[name]
    for key in table:
        if key not in spec:
            raise _fail(f"unknown key; [{name}] has: {', '.join(spec)}", path, f"{name}.{key}")
    return {key: _value(table[key], k, f"{name}.{key}", path) if key in table else _default(k, path)
            for key, k in spec.items()}


def _default(spec: Key, path: Path) -> Any:
    if spec.kind == "path":
        return None  # unset paths stay None ("" in the schema means "off")
    return spec.default


def _value(value: Any, spec: Key, dotted: str, path: Path) -> Any:
    kind = spec.kind
    if kind == "bool":
        if not isinstance(value, bool):
            raise _fail(f"must be true or false, got {value!r}", path, dotted)
        return value
    if kind in ("str", "path"):
        if not isinstance(value, str):
            raise _fail(f"must be a string, got {value!r}", path, dotted)
        if spec.choices and value not in spec.choices:
            raise _fail(f"must be one of {', '.join(spec.choices)}; got {value!r}", path, dotted)
        return resolve_path(value, path.parent) if kind == "path" else value
    if kind == "range":
        return _range(value, dotted, path)
    number = _number(value, kind == "int", dotted, path)
    if (spec.low is not None and number < spec.low) or (spec.high is not None and number > spec.high):
        raise _fail(f"{number!r} is out of range [{spec.low:g}, {spec.high:g}]", path, dotted)
    return number


def _number(value: Any, integer: bool, dotted: str, path: Path) -> int | float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(f"must be a{'n integer' if integer else ' number'}, got {value!r}", path, dotted)
    if integer and not isinstance(value, int):
        raise _fail(f"must be an integer, got {value!r}", path, dotted)
    if isinstance(value, float) and math.isnan(value):
        raise _fail("must be a number, got nan", path, dotted)
    return int(value) if integer else float(value)


def _range(value: Any, dotted: str, path: Path) -> list[float]:
    if not isinstance(value, list) or len(value) not in (0, 2):
        raise _fail(f"must be [] or [lo, hi], got {value!r}", path, dotted)
    bounds = [float(_number(v, False, dotted, path)) for v in value]
    if bounds and not bounds[0] < bounds[1]:
        raise _fail(f"needs lo < hi, got {value!r}", path, dotted)
    return bounds


def resolve_path(value: str, base_dir: Path) -> Path | None:
    """``""`` -> None; ``~`` expanded; relative -> against the config file's directory."""
    if not value:
        return None
    candidate = Path(value).expanduser()
    return candidate if candidate.is_absolute() else (base_dir / candidate).resolve()


def default_spool_path(base_dir: Path) -> Path:
    """``$STATE_DIRECTORY/spool.db`` under systemd, else ``<config dir>/vigil-state/spool.db``."""
    state = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
    return (Path(state) if state else base_dir / "vigil-state") / "spool.db"


def _device_id(value: str, path: Path) -> str:
    device = value or socket.gethostname().split(".")[0] or "vigil"
    if "/" in device or any(c in _TOPIC_FORBIDDEN or c.isspace() for c in device):
        raise _fail(f"{device!r} must not contain '/', '+', '#' or spaces (it is a topic level)", path, "device.id")
    return device


# --------------------------------------------------------------------------- cross-key checks


def _cross_checks(values: dict[str, dict[str, Any]], path: Path) -> None:
    alerts, mqtt, tls = values["alerts"], values["mqtt"], values["mqtt.tls"]
    if alerts["k"] > alerts["n"]:
        raise _fail(f"k = {alerts['k']} must not exceed n = {alerts['n']}", path, "alerts.k")
    if mqtt["reconnect_min_s"] > mqtt["reconnect_max_s"]:
        raise _fail("must not exceed mqtt.reconnect_max_s", path, "mqtt.reconnect_min_s")
    prefix = mqtt["topic_prefix"]
    if not prefix.strip("/") or prefix.startswith("$") or any(c in _TOPIC_FORBIDDEN for c in prefix):
        raise _fail(f"{prefix!r}: a non-empty topic without '+', '#' or a leading '$'", path, "mqtt.topic_prefix")
    if prefix.replace("{device_id}", "").count("{") or prefix.replace("{device_id}", "").count("}"):
        raise _fail(f"the only placeholder allowed is {{device_id}}: {prefix!r}", path, "mqtt.topic_prefix")
    given = [k for k in ("password", "password_env", "password_file") if mqtt[k]]
    if len(given) > 1:
        raise _fail(f"set only one of mqtt.{', mqtt.'.join(given)}", path, f"mqtt.{given[1]}")
    if given and not mqtt["username"]:
        raise _fail("a password needs mqtt.username", path, "mqtt.username")
    if tls["key_file"] and not tls["cert_file"]:
        raise _fail("key_file needs cert_file (mutual TLS)", path, "mqtt.tls.cert_file")
    given = [k for k in ("key_password", "key_password_env", "key_password_file") if tls[k]]
    if len(given) > 1:
        raise _fail(f"set only one of mqtt.tls.{', mqtt.tls.'.join(given)}", path, f"mqtt.tls.{given[1]}")


def _check_files(values: dict[str, dict[str, Any]], path: Path) -> None:
    for dotted in ("mqtt.password_file", "mqtt.tls.ca_file", "mqtt.tls.cert_file", "mqtt.tls.key_file",
                   "mqtt.tls.key_password_file"):
        section, _, key = dotted.rpartition(".")
        file = values[section][key]
        if file is not None and not file.is_file():
            raise _fail(f"file not found: {file}", path, dotted)
    if values["mqtt"]["host"]:
        mqtt_password(values, path)
        tls_key_password(values, path)


def _secret(env_name: str, file: Path | None, dotted_env: str, dotted_file: str, path: Path) -> str | None:
    if env_name:
        if env_name not in os.environ:
            raise _fail(f"environment variable {env_name} is not set", path, dotted_env)
        return os.environ[env_name]
    if file is not None:
        try:
            lines = file.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise _fail(f"cannot read {file}: {exc}", path, dotted_file) from None
        return lines[0] if lines else ""
    return None


def mqtt_password(values: dict[str, dict[str, Any]], path: Path) -> str | None:
    """The broker password from plain text, an environment variable or a file (None = none)."""
    mqtt = values["mqtt"]
    if mqtt["password"]:
        return str(mqtt["password"])
    return _secret(mqtt["password_env"], mqtt["password_file"], "mqtt.password_env", "mqtt.password_file", path)


def tls_key_password(values: dict[str, dict[str, Any]], path: Path) -> str | None:
    tls = values["mqtt.tls"]
    if tls["key_password"]:
        return str(tls["key_password"])
    return _secret(tls["key_password_env"], tls["key_password_file"], "mqtt.tls.key_password_env",
                   "mqtt.tls.key_password_file", path)


def mqtt_settings(config: AgentConfig) -> Any:
    """:class:`edge_agent.mqtt.settings.MqttSettings` for ``[mqtt]`` (secrets resolved), or None."""
    if not config.broker_enabled:
        return None
    from edge_agent.mqtt.settings import MqttSettings, TlsSettings

    mqtt, tls = config.values["mqtt"], config.values["mqtt.tls"]
    tls_settings = None
    if config.tls_enabled:
        tls_settings = TlsSettings(
            ca_file=_str_or_none(tls["ca_file"]),
            cert_file=_str_or_none(tls["cert_file"]),
            key_file=_str_or_none(tls["key_file"]),
            key_password=tls_key_password(config.values, config.path),
            insecure=bool(tls["insecure"]),
        )
    try:
        return MqttSettings(
            host=mqtt["host"],
            port=mqtt["port"],
            client_id=mqtt["client_id"] or None,
            username=mqtt["username"] or None,
            password=mqtt_password(config.values, config.path),
            tls=tls_settings,
            protocol=mqtt["protocol"],
            keepalive=mqtt["keepalive"],
            topic_prefix=mqtt["topic_prefix"],
            reconnect_min_s=mqtt["reconnect_min_s"],
            reconnect_max_s=mqtt["reconnect_max_s"],
            connect_timeout_s=mqtt["connect_timeout_s"],
        )
    except VigilInputError as exc:
        raise VigilInputError(exc.detail, file=str(config.path), key=exc.key or "mqtt") from None


def _str_or_none(value: Path | None) -> str | None:
    return None if value is None else str(value)


# --------------------------------------------------------------------------- bundle and source


def _load_bundle(values: dict[str, dict[str, Any]], path: Path) -> Bundle:
    bundle_path = values["bundle"]["path"]
    if bundle_path is None:
        raise _fail("missing: set path = \"model.vigil\" in [bundle]", path, "bundle.path")
    try:
        return load_bundle(bundle_path)
    except VigilInputError as exc:
        raise _fail(str(exc), path, "bundle.path") from None


def _factory() -> Any:
    from edge_agent.sources import factory

    return factory


def _source_with_defaults(source: dict[str, Any], bundle: Bundle | None, path: Path) -> dict[str, Any]:
    """The ``[source]`` table with the factory's defaults for its kind filled in."""
    try:
        return dict(_factory().effective_source_section(dict(source), default_features=_features(bundle)))
    except VigilInputError as exc:
        raise VigilInputError(exc.detail, file=str(path), key=exc.key or "source") from None


def _features(bundle: Bundle | None) -> list[str] | None:
    return None if bundle is None else list(bundle.features)


def make_configured_source(config: AgentConfig, bundle: Bundle | None = None) -> Any:
    """The source described by ``[source]`` (not opened); stdin/serial default to the bundle's features."""
    return _factory().make_source(dict(config.source), base_dir=config.base_dir,
                                  default_features=_features(bundle or config.bundle))


def check_source_features(source: dict[str, Any], bundle: Bundle, path: Path) -> None:
    """Build the source (without opening a device) and compare its features with the bundle's."""
    try:
        made = _factory().make_source(dict(source), base_dir=path.parent, default_features=_features(bundle))
    except VigilInputError as exc:
        raise VigilInputError(exc.detail, file=str(path), key=exc.key or "source") from None
    features = list(getattr(made, "features", None) or [])
    if features:
        compare_features(features, bundle, path, feature_key(source))


def feature_key(source: dict[str, Any]) -> str:
    for key in ("columns", "features"):
        if key in source:
            return f"source.{key}"
    return "source"


def compare_features(features: list[str], bundle: Bundle, path: Path, key: str) -> None:
    """Name by name: the model's inputs are positional, so order matters too."""
    if list(features) == list(bundle.features):
        return
    if len(features) != len(bundle.features):
        detail = (f"source has {len(features)} features {features}, "
                  f"the bundle needs {len(bundle.features)} {bundle.features}")
    else:
        i = next(i for i, (a, b) in enumerate(zip(features, bundle.features)) if a != b)
        detail = (f"source feature {i} is {features[i]!r} but the bundle expects {bundle.features[i]!r} "
                  f"(source {features}, bundle {bundle.features})")
    raise _fail(detail, path, key)
