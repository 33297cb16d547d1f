"""Validation of TOML values against :mod:`edge_agent.config_schema`: the one parser.

Each function raises a one-line :class:`VigilInputError` naming the dotted key
(``alerts.k``, ``source.rate_hz``...); :func:`edge_agent.config.load_config`
adds the config file. The rules that more than one place needs live here once:
topic prefix and device id (also used by :class:`edge_agent.mqtt.settings.MqttSettings`
and the subscriber), and secrets (plain text, ``*_env`` or ``*_file``).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from edge_agent.config_schema import KINDS, SCHEMA, SECTION_ORDER, SOURCE_SCHEMA, Key, bounds_text, toml_value
from edge_agent.errors import VigilInputError
from edge_agent.readers import parse_rows

PUBLIC_KEY_PREFIX = "ed25519:"
_TOPIC_FORBIDDEN = set("+#\0")

#: Longest text value a config key takes (MQTT topics and user names have far smaller useful sizes).
MAX_TEXT = 1024


def fail(dotted: str, message: str) -> VigilInputError:
    return VigilInputError(message, key=dotted)


# --------------------------------------------------------------------------- one value


def check_value(spec: Key, value: Any, dotted: str, base_dir: Path | None = None) -> Any:
    """The validated (and normalised) value of one key; see the kinds in config_schema."""
    kind = spec.kind
    if kind == "bool":
        if not isinstance(value, bool):
            raise fail(dotted, f"must be true or false, got {value!r}")
        return value
    if kind in ("int", "float"):
        return _check_bounds(spec, _number(value, kind == "int", dotted), dotted)
    if kind in ("str", "path"):
        if spec.choices and isinstance(value, (int, float)) and not isinstance(value, bool):
            value = f"{value:g}"  # protocol = 5, dlpf_hz = 44 written without quotes
        if not isinstance(value, str):
            raise fail(dotted, f"must be a string, got {value!r}")
        if len(value) > MAX_TEXT:  # a topic, user name or path this long is a mistake, not a setting
            raise fail(dotted, f"is {len(value)} characters long; at most {MAX_TEXT}")
        _check_choices(spec, value, dotted)
        return resolve_path(value, base_dir) if kind == "path" else value
    if kind == "range":
        return _range(value, dotted)
    if kind == "columns" and isinstance(value, str):
        return _columns_text(value, dotted)
    if kind in ("names", "columns"):
        return _names(value, dotted)
    if kind == "keys":
        return [_trusted_key(v, f"{dotted}[{i}]", base_dir) for i, v in enumerate(_list(value, dotted))]
    raise AssertionError(f"unknown value kind {kind!r} for {dotted}")  # a schema typo, not user input


def _number(value: Any, integer: bool, dotted: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int)):
        raise fail(dotted, f"must be {'an integer' if integer else 'a number'}, got {value!r}")
    if isinstance(value, float) and math.isnan(value):
        raise fail(dotted, "must be a number, got nan")
    return int(value) if integer else float(value)


def _check_bounds(spec: Key, number: float, dotted: str) -> float:
    _check_choices(spec, number, dotted)
    low_bad = spec.low is not None and (number < spec.low or (spec.low_open and number == spec.low))
    if low_bad or (spec.high is not None and number > spec.high):
        raise fail(dotted, f"{number!r} is out of range (must be {bounds_text(spec)})")
    return number


def _check_choices(spec: Key, value: Any, dotted: str) -> None:
    if spec.choices and value not in spec.choices:
        shown = ", ".join(toml_value(c, spec).strip('"') for c in spec.choices)
        raise fail(dotted, f"must be one of {shown}; got {toml_value(value, spec)}")


def _list(value: Any, dotted: str) -> list[Any]:
    if not isinstance(value, list):
        raise fail(dotted, f"must be a list, got {value!r}")
    return value


def _range(value: Any, dotted: str) -> list[float]:
    if not isinstance(value, list) or len(value) not in (0, 2):
        raise fail(dotted, f"must be [] or [lo, hi], got {value!r}")
    bounds = [float(_number(v, False, dotted)) for v in value]
    if bounds and not bounds[0] < bounds[1]:
        raise fail(dotted, f"needs lo < hi, got {value!r}")
    return bounds


def _names(value: Any, dotted: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise fail(dotted, f'must be a list of names like ["x", "y", "z"], got {value!r}')
    if len(set(value)) != len(value):
        raise fail(dotted, f"lists a name twice: {value!r}")
    return list(value)


def _columns_text(text: str, dotted: str) -> list[str]:
    names = [part.strip() for part in text.split(",")] if text.strip() else []
    if any(not name for name in names):
        raise fail(dotted, f"empty column name in {text!r} (use NAME,NAME,...)")
    return _names(names, dotted)


def resolve_path(value: str, base_dir: Path | None) -> Path | None:
    """``""`` -> None; ``~`` expanded; relative -> against the config file's directory."""
    if not value:
        return None
    candidate = Path(value).expanduser()
    if candidate.is_absolute() or base_dir is None:
        return candidate
    return (base_dir / candidate).resolve()


# --------------------------------------------------------------------------- trusted keys


def _trusted_key(value: Any, dotted: str, base_dir: Path | None) -> str | Path:
    """``"ed25519:<base64>"`` or bare base64 -> the ``ed25519:`` text; anything else is a key file."""
    if not isinstance(value, str) or not value.strip():
        raise fail(dotted, f"must be an ed25519 public key or a file path, got {value!r}")
    text = value.strip()
    if text.startswith(PUBLIC_KEY_PREFIX):
        return public_key_text(text[len(PUBLIC_KEY_PREFIX):], dotted)
    if _b64_key(text) is not None:
        return PUBLIC_KEY_PREFIX + text
    path = resolve_path(text, base_dir)
    assert path is not None  # text is not empty
    return path


def _b64_key(text: str) -> bytes | None:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == 32 else None


def public_key_text(b64: str, dotted: str) -> str:
    if _b64_key(b64) is None:
        raise fail(dotted, f"not an ed25519 public key (expected '{PUBLIC_KEY_PREFIX}<base64 of 32 bytes>')")
    return PUBLIC_KEY_PREFIX + b64


def read_public_key_file(path: Path, dotted: str) -> str:
    """A key file: one line ``ed25519:<base64>`` (``vigil keys new`` writes ``KEY.pub``), or JSON with
    ``public_key`` only (a file that also holds the private key is refused)."""
    try:
        text = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise fail(dotted, f"cannot read key file {path}: {getattr(exc, 'strerror', None) or exc}") from None
    if text.startswith("{"):
        try:
            doc = json.loads(text)
        except ValueError:
            doc = None
        if isinstance(doc, dict) and "private_key" in doc:  # the signing key must stay on the workstation
            raise fail(dotted, f"{path} holds a private key: configure its public key file ({path.name}.pub)")
        text = str(doc.get("public_key", "")) if isinstance(doc, dict) else ""
    if not text.startswith(PUBLIC_KEY_PREFIX):
        raise fail(dotted, f"{path} holds no '{PUBLIC_KEY_PREFIX}<base64>' public key")
    return public_key_text(text[len(PUBLIC_KEY_PREFIX):], dotted)


# --------------------------------------------------------------------------- tables


def parse_table(table: Mapping[str, Any], keys: Mapping[str, Key], prefix: str,
                base_dir: Path | None = None, *, what: str = "") -> dict[str, Any]:
    """Every key of ``keys`` validated or defaulted; unknown keys are errors. Required keys may be None."""
    for key in table:
        if key not in keys:
            raise fail(f"{prefix}.{key}", f"unknown key{what}; allowed: {', '.join(keys)}")
    out: dict[str, Any] = {}
    for key, spec in keys.items():
        if key in table:
            out[key] = check_value(spec, table[key], f"{prefix}.{key}", base_dir)
        else:
            out[key] = None if spec.kind == "path" else spec.default
    return out


def split_sections(raw: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """The TOML document -> one table per schema section (``[mqtt.tls]`` split out of ``[mqtt]``)."""
    for name, table in raw.items():
        if name not in SCHEMA and name not in ("source", "mqtt"):
            raise fail(name, f"unknown section [{name}]; known: {', '.join(SECTION_ORDER)}")
        if not isinstance(table, dict):
            raise fail(name, f"must be a table ([{name}])")
    tables: dict[str, Mapping[str, Any]] = {name: raw.get(name, {}) for name in SCHEMA}
    mqtt = dict(raw.get("mqtt", {}))
    tls = mqtt.pop("tls", {})
    if not isinstance(tls, dict):
        raise fail("mqtt.tls", "must be a table ([mqtt.tls])")
    tables["mqtt"], tables["mqtt.tls"] = mqtt, tls
    tables["source"] = raw.get("source", {})
    return tables


def parse_source(table: Mapping[str, Any], base_dir: Path | None = None) -> dict[str, Any]:
    """``[source]`` validated for its ``kind``, every default filled in (``kind`` first)."""
    kind = table.get("kind")
    if kind is None:
        raise fail("source.kind", f"is required (a [source] table with kind = one of {', '.join(KINDS)})")
    if not isinstance(kind, str) or kind not in SOURCE_SCHEMA:
        raise fail("source.kind", f"must be one of {', '.join(KINDS)}, got {kind!r}")
    keys = SOURCE_SCHEMA[kind]
    rest = {k: v for k, v in table.items() if k != "kind"}
    values = parse_table(rest, keys, "source", base_dir, what=f" for kind {kind!r}")
    for key, spec in keys.items():
        if spec.required and values[key] is None:
            raise fail(f"source.{key}", f"is required for kind {kind!r}: {spec.doc}")
    values = {"kind": kind, **values}
    _check_source_combinations(values)
    return values


def _check_source_combinations(cfg: dict[str, Any]) -> None:
    """Rules between keys; what needs a driver (MPU6050 rate divider) is the factory's ``check_options``."""
    kind = cfg["kind"]
    if kind == "serial" and cfg["reconnect_max_s"] < cfg["reconnect_min_s"]:
        raise fail("source.reconnect_max_s", "must be >= reconnect_min_s")
    if kind in ("adxl345", "mpu6050") and cfg["retry_max_s"] < cfg["retry_min_s"]:
        raise fail("source.retry_max_s", "must be >= retry_min_s")
    if kind == "synthetic" and cfg["faults"] and cfg["n_rows"] < 500:
        raise fail("source.n_rows", "must be >= 500 when faults = true (faults are placed by row count)")
    if kind == "replay" and cfg["rows"]:
        try:
            parse_rows(cfg["rows"])
        except VigilInputError as exc:
            raise fail("source.rows", exc.detail) from None


# --------------------------------------------------------------------------- shared rules


def check_topic_prefix(prefix: Any, dotted: str = "mqtt.topic_prefix") -> str:
    """A non-empty topic without wildcards, a leading '$' or any placeholder but {device_id}."""
    if not isinstance(prefix, str) or not prefix.strip("/"):
        raise fail(dotted, "must be a non-empty topic like 'vigil/{device_id}'")
    if prefix.startswith("$") or any(c in _TOPIC_FORBIDDEN for c in prefix):
        raise fail(dotted, f"{prefix!r}: a topic without '+', '#' or a leading '$'")
    rest = prefix.replace("{device_id}", "")
    if "{" in rest or "}" in rest:
        raise fail(dotted, f"the only placeholder allowed is {{device_id}}: {prefix!r}")
    return prefix


def check_topic_level(value: Any, dotted: str = "device.id") -> str:
    """One MQTT topic level (device id): non-empty, no '/', '+', '#' or whitespace."""
    if not isinstance(value, str) or not value or any(c in _TOPIC_FORBIDDEN or c == "/" or c.isspace()
                                                      for c in value):
        raise fail(dotted, f"{value!r} must be non-empty without '/', '+', '#' or spaces (it is a topic level)")
    return value


def check_at_most_one(section: Mapping[str, Any], names: tuple[str, ...], prefix: str) -> None:
    given = [name for name in names if section[name]]
    if len(given) > 1:
        raise fail(f"{prefix}.{given[1]}", f"set only one of {prefix}.{', {prefix}.'.join(given)}")


def check_mqtt_tables(mqtt: Mapping[str, Any], tls: Mapping[str, Any], prefix: str = "mqtt") -> None:
    """Rules between the keys of validated ``[mqtt]`` and ``[mqtt.tls]`` tables."""
    if mqtt["host"] and (any(c.isspace() for c in mqtt["host"]) or "/" in mqtt["host"]):
        raise fail(f"{prefix}.host", f"not a host name or address: {mqtt['host']!r}")
    if mqtt["reconnect_min_s"] > mqtt["reconnect_max_s"]:
        raise fail(f"{prefix}.reconnect_min_s", f"must not exceed {prefix}.reconnect_max_s")
    if len(mqtt["client_id"]) > 128:
        raise fail(f"{prefix}.client_id", "must be at most 128 characters")
    check_topic_prefix(mqtt["topic_prefix"], f"{prefix}.topic_prefix")
    check_at_most_one(mqtt, ("password", "password_env", "password_file"), prefix)
    if (mqtt["password"] or mqtt["password_env"] or mqtt["password_file"]) and not mqtt["username"]:
        raise fail(f"{prefix}.username", f"a password needs {prefix}.username")
    if tls["key_file"] and not tls["cert_file"]:
        raise fail(f"{prefix}.tls.cert_file", "key_file needs cert_file (mutual TLS)")
    check_at_most_one(tls, ("key_password", "key_password_env", "key_password_file"), f"{prefix}.tls")


def read_secret(plain: str, env_name: str, file: Path | None, dotted: str) -> str | None:
    """A secret from plain text, an environment variable or a file's first line (None = none given).

    The one place secrets are read; ``dotted`` names the group (``mqtt.password``).
    """
    if plain:
        return plain
    if env_name:
        if env_name not in os.environ:
            raise fail(f"{dotted}_env", f"environment variable {env_name} is not set")
        return os.environ[env_name]
    if file is not None:
        try:
            lines = file.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise fail(f"{dotted}_file", f"cannot read {file}: {getattr(exc, 'strerror', None) or exc}") from None
        return lines[0] if lines else ""
    return None
