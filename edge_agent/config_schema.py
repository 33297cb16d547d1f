"""The agent's TOML keys: type, default, allowed range and one line of documentation.

This table is the single source of truth: :mod:`edge_agent.config` validates
against it, ``vigil agent check-config`` prints defaults from it, and
``firmware_configs/README.md`` documents the same keys (a test keeps them in
step). The ``[source]`` table is validated by the source factory instead,
because its keys depend on ``source.kind``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edge_agent.config import AgentConfig

# Value kinds: "str", "int", "float", "bool", "path" (str resolved against the
# config file's directory), "range" ([] or [lo, hi] with lo < hi).


@dataclass(frozen=True)
class Key:
    kind: str
    default: Any
    doc: str
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    secret: bool = False


UNSET = None  # a key whose default is "not set" (printed as a comment by check-config)

SCHEMA: dict[str, dict[str, Key]] = {
    "device": {
        "id": Key("str", "", "device id used in topics and payloads; empty = the host name"),
        "description": Key("str", "", "free text, for people only"),
    },
    "bundle": {
        "path": Key("path", UNSET, "the .vigil bundle to score with (required)"),
        "num_threads": Key("int", 1, "TFLite interpreter threads", low=1, high=64),
    },
    "quality": {
        "policy": Key("str", "skip", "bad samples: skip (drop them and restart the window after them) or "
                      "hold (replace a bad value by the last good value of its feature)", choices=("skip", "hold")),
        "valid_range": Key("range", [], "[lo, hi]: a sample with any value outside is bad; [] = no range check"),
    },
    "alerts": {
        "sensitivity": Key("float", 1.0, "a window is anomalous when score > bundle threshold * sensitivity",
                           low=1e-6, high=1e6),
        "k": Key("int", 1, "an event opens when k of the last n windows are anomalous", low=1, high=100_000),
        "n": Key("int", 1, "see k", low=1, high=100_000),
        "m": Key("int", 1, "an event closes after m consecutive normal windows", low=1, high=100_000),
        "cooldown": Key("int", 0, "windows after a close during which no event opens", low=0, high=10_000_000),
        "smoothing": Key("float", UNSET, "EWMA alpha in (0, 1] over window scores; unset = the bundle's "
                         "value, 1.0 = no smoothing", low=1e-6, high=1.0),
        "top_features": Key("int", 3, "how many contributing features an alert lists", low=1, high=1000),
        "close_on_shutdown": Key("bool", True, "publish the close of an open event when the agent stops "
                                 "(SIGTERM or end of a replay)"),
    },
    "mqtt": {
        "host": Key("str", "", "broker host name; empty = no broker (alerts go to the JSONL/stdout sinks)"),
        "port": Key("int", UNSET, "broker port; unset = 1883, or 8883 with TLS", low=1, high=65535),
        "client_id": Key("str", "", "MQTT client id; empty = vigil-<device.id>"),
        "username": Key("str", "", "user name for password authentication"),
        "password": Key("str", "", "password in plain text (prefer password_env or password_file)", secret=True),
        "password_env": Key("str", "", "name of an environment variable holding the password"),
        "password_file": Key("path", "", "file whose first line is the password"),
        "protocol": Key("str", "5", "MQTT protocol version; 5 lets the broker refuse a publish (e.g. ACL) "
                        "so the alert stays spooled, while 3.1.1 brokers acknowledge and drop it",
                        choices=("3.1.1", "5")),
        "keepalive": Key("int", 30, "keepalive seconds (the broker publishes the Last Will after 1.5x)",
                         low=5, high=65535),
        "topic_prefix": Key("str", "vigil/{device_id}", "topic prefix; {device_id} is replaced by device.id"),
        "reconnect_min_s": Key("float", 1.0, "first reconnect delay (doubles, with jitter)", low=0.01, high=3600),
        "reconnect_max_s": Key("float", 60.0, "longest reconnect delay", low=0.01, high=86400),
        "connect_timeout_s": Key("float", 10.0, "give up one connection attempt after this long", low=0.1, high=600),
        "drain_timeout_s": Key("float", 5.0, "on a clean stop, wait up to this long for the broker to take the "
                               "alerts still in the spool (whatever is left stays spooled)", low=0.0, high=600),
    },
    "mqtt.tls": {
        "enabled": Key("bool", False, "use TLS; on automatically when ca_file, cert_file or insecure is set"),
        "ca_file": Key("path", "", "CA certificate (PEM) to verify the broker; empty = system CAs"),
        "cert_file": Key("path", "", "client certificate (PEM) for mutual TLS"),
        "key_file": Key("path", "", "client private key (PEM); empty = the key is inside cert_file"),
        "key_password": Key("str", "", "key passphrase in plain text (prefer the _env/_file forms)", secret=True),
        "key_password_env": Key("str", "", "environment variable holding the key passphrase"),
        "key_password_file": Key("path", "", "file whose first line is the key passphrase"),
        "insecure": Key("bool", False, "skip certificate and host name checks (testing only)"),
    },
    "spool": {
        "path": Key("path", UNSET, "SQLite spool of unacknowledged alerts; unset = "
                    "$STATE_DIRECTORY/spool.db, else ./vigil-state/spool.db"),
        "max_messages": Key("int", 10000, "most alerts kept; the oldest are dropped (and counted)",
                            low=1, high=10_000_000),
        "max_age_s": Key("float", 604800.0, "alerts older than this are dropped (and counted)",
                         low=1.0, high=10 * 365 * 86400.0),
    },
    "sinks": {
        "jsonl": Key("path", "", "append every alert as one JSON line to this file; empty = off"),
        "stdout": Key("bool", False, "print every alert as one JSON line on stdout (always on when "
                      "there is neither a broker nor a jsonl file)"),
        "health_jsonl": Key("bool", False, "also write health messages to the jsonl/stdout sinks"),
    },
    "health": {
        "interval_s": Key("float", 60.0, "seconds between health messages; 0 = none", low=0.0, high=86400.0),
    },
    "log": {
        "level": Key("str", "info", "log level", choices=("debug", "info", "warning", "error")),
    },
}

# Sections whose keys are free-form here (checked elsewhere).
OPEN_SECTIONS = ("source",)
SECTION_ORDER = ("device", "bundle", "source", "quality", "alerts", "mqtt", "mqtt.tls", "spool",
                 "sinks", "health", "log")


# --------------------------------------------------------------------------- effective config


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value) if not isinstance(value, float) or math.isfinite(value) else (
            "inf" if value > 0 else "-inf")
    if isinstance(value, Path):
        value = str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def render_config(config: "AgentConfig") -> str:
    """The effective configuration as TOML text (defaults filled in, secrets masked)."""
    lines = [f"# effective configuration of {config.path}"]
    if config.bundle is not None:
        b = config.bundle
        lines.append(f"# bundle: model {b.model_id}, features {', '.join(b.features)}, window {b.spec.window}, "
                     f"hop {b.spec.hop}, threshold {b.threshold:.6g}, quantization {b.quantization}")
    for section in SECTION_ORDER:
        lines.append("")
        lines.append(f"[{section}]")
        if section == "source":
            lines.extend(f"{k} = {_toml_value(v)}" for k, v in config.source.items() if v is not None)
            continue
        for key, spec in SCHEMA[section].items():
            value = config.values[section][key]
            if value is None or value == "" and spec.kind == "path":
                lines.append(f"# {key} = (unset)")
            elif spec.secret and value:
                lines.append(f'{key} = "***"')
            else:
                lines.append(f"{key} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"
