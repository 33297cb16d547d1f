"""Every key of the agent TOML: type, default, allowed values and one line of documentation.

This table is the single source of truth. :mod:`edge_agent.config_values`
validates against it (fixed sections and ``[source]`` per ``kind``),
:mod:`edge_agent.config` turns the validated tables into typed sections,
``check-config`` prints the effective configuration with :func:`render_config`
and ``firmware_configs/README.md`` holds the key tables of
:func:`render_key_tables` (a test keeps the file equal to the generated text).
Nothing here imports the rest of the config code.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

# Value kinds:
#   "str", "int", "float", "bool"
#   "path"    str resolved against the config file's directory ("" = off/unset)
#   "range"   [] or [lo, hi] with lo < hi
#   "names"   list of distinct non-empty names
#   "columns" like "names", or one "a,b,c" string
#   "keys"    list of ed25519 public keys ("ed25519:<base64>" or bare base64) or key file paths


@dataclass(frozen=True)
class Key:
    kind: str
    default: Any
    doc: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False  # the low bound itself is not allowed (rates, delays)
    choices: tuple[Any, ...] = ()
    secret: bool = False
    required: bool = False
    hex: bool = False  # show integers as 0x.. (I2C addresses)
    unset: str = ""  # what leaving the key out means, for check-config's "# key = (unset: ...)"


UNSET = None  # "not set": check-config prints such a key as a comment
BUNDLE_POLICY = "the bundle's recommended policy"


def _req(kind: str, doc: str) -> Key:
    return Key(kind, UNSET, doc, required=True)


SCHEMA: dict[str, dict[str, Key]] = {
    "device": {
        "id": Key("str", "", "device id used in topics and payloads; empty = the host name"),
        "description": Key("str", "", "free text, for people only"),
    },
    "bundle": {
        "path": _req("path", "the .vigil bundle to score with"),
        "num_threads": Key("int", 1, "TFLite interpreter threads", low=1, high=64),
        "trusted_keys": Key("keys", [], "ed25519 public keys (\"ed25519:<base64>\", or files holding one) whose "
                            "signature the bundle must carry; [] = signatures not required"),
    },
    "quality": {
        "policy": Key("str", "skip", "bad samples: skip (drop them; a lone one is skipped inside the window, "
                      "a longer run restarts it) or hold (replace a bad value by the last good value of its feature)",
                      choices=("skip", "hold")),
        "valid_range": Key("range", [], "[lo, hi]: a sample with any value outside is bad; [] = no range check"),
    },
    "alerts": {
        "sensitivity": Key("float", 1.0, "a window is anomalous when score > threshold * sensitivity",
                           low=1e-6, high=1e6),
        "dynamic_threshold": Key("bool", True, "use the bundle's dynamic threshold (false = its fixed threshold)"),
        "k": Key("int", UNSET, "an event opens when k of the last n windows are anomalous; unset = the bundle's "
                 "recommended policy (set k and n together)", low=1, high=100_000, unset=BUNDLE_POLICY),
        "n": Key("int", UNSET, "see k", low=1, high=100_000, unset=BUNDLE_POLICY),
        "m": Key("int", UNSET, "an event closes after m consecutive normal windows; unset = the bundle's",
                 low=1, high=100_000, unset=BUNDLE_POLICY),
        "cooldown": Key("int", UNSET, "windows after a close during which no event opens; unset = the bundle's",
                        low=0, high=10_000_000, unset=BUNDLE_POLICY),
        "smoothing": Key("float", UNSET, "EWMA alpha over window scores; unset = the bundle's, 1.0 = no smoothing",
                         low=0.0, high=1.0, low_open=True, unset=BUNDLE_POLICY),
        "score": Key("str", UNSET, "what decisions are made on: \"row\" = each row's error averaged over the windows "
                     "that covered it, \"window\" = each window's mean error; unset = the bundle's",
                     choices=("window", "row"), unset=BUNDLE_POLICY),
        "top_features": Key("int", 3, "how many contributing features an alert lists", low=1, high=1000),
        "sensor_faults": Key("bool", True, "report sensor faults (stuck, saturated, dead axis) found by the "
                             "bundle's sensor checks"),
        "close_on_shutdown": Key("bool", True, "publish the close of an open event when the agent stops "
                                 "(SIGTERM or end of a replay)"),
    },
    "mqtt": {
        "host": Key("str", "", "broker host name; empty = no broker (alerts go to the JSONL/stdout sinks)"),
        "port": Key("int", UNSET, "broker port; unset = 1883, or 8883 with TLS", low=1, high=65535,
                    unset="1883, or 8883 with TLS"),
        "client_id": Key("str", "", "MQTT client id (at most 128 characters); empty = vigil-<device.id>"),
        "username": Key("str", "", "user name for password authentication"),
        "password": Key("str", "", "password in plain text (prefer password_env or password_file)", secret=True),
        "password_env": Key("str", "", "name of an environment variable holding the password"),
        "password_file": Key("path", "", "file whose first line is the password"),
        "protocol": Key("str", "5", "MQTT protocol version; 5 lets the broker refuse a publish (e.g. ACL) so the "
                        "alert stays spooled, while 3.1.1 brokers acknowledge and drop it", choices=("3.1.1", "5")),
        "keepalive": Key("int", 30, "keepalive seconds (the broker publishes the Last Will after 1.5x)",
                         low=5, high=65535),
        "topic_prefix": Key("str", "vigil/{device_id}", "topic prefix; {device_id} is replaced by device.id"),
        "reconnect_min_s": Key("float", 1.0, "first reconnect delay (doubles, with jitter)", low=0.01, high=3600),
        "reconnect_max_s": Key("float", 60.0, "longest reconnect delay (>= reconnect_min_s)", low=0.01, high=86400),
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
    "rollout": {
        "enabled": Key("bool", True, "accept `vigil deploy` and `vigil policy` commands on <prefix>/cmd/deploy and "
                       "<prefix>/cmd/policy (needs [mqtt] host; a deploy also needs bundle.trusted_keys)"),
        "probation_windows": Key("int", 500, "windows a deployed bundle must score within bounds before it becomes "
                                 "active (else the agent rolls back)", low=1, high=10_000_000),
        "probation_timeout_s": Key("float", 3600.0, "roll back when the probation windows are not scored within "
                                   "this long", low=1.0, high=30 * 86400.0),
        "max_alarm_fraction": Key("float", UNSET, "most windows above the threshold a probation allows; unset = "
                                  "derived from the bundle's threshold statistics", low=0.0, high=1.0,
                                  low_open=True, unset="from the bundle's training statistics"),
        "session_expiry_s": Key("int", 604800, "how long the broker queues commands for this device while it is "
                                "offline (persistent session of the command connection)", low=0, high=4294967295),
    },
    "homeassistant": {
        "enabled": Key("bool", False, "publish Home Assistant MQTT discovery configs (retained) and a retained "
                       "<prefix>/state topic for them (needs [mqtt] host)"),
        "discovery_prefix": Key("str", "homeassistant", "Home Assistant's discovery prefix"),
        "node_id": Key("str", "", "node id in the discovery topics and unique ids; empty = vigil_<device.id>"),
        "device_name": Key("str", "", "device name shown in Home Assistant; empty = device.id"),
    },
    "metrics": {
        "mode": Key("str", "off", "Prometheus metrics from each health message: textfile (node_exporter textfile "
                    "collector, atomic writes; no measurable extra RSS), http (GET /metrics, +0.7 MB RSS) or off",
                    choices=("off", "textfile", "http")),
        "textfile": Key("path", "", "file for mode = textfile; empty = vigil.prom beside the spool"),
        "http_host": Key("str", "127.0.0.1", "address the /metrics endpoint listens on (mode = http)"),
        "http_port": Key("int", 9847, "port of the /metrics endpoint (mode = http)", low=1, high=65535),
    },
    "captures": {
        "enabled": Key("bool", False, "keep a ring of raw samples and write the rows around each alert "
                       "(NPY + JSON sidecar) for retraining"),
        "path": Key("path", "", "capture directory; empty = captures/ beside the spool"),
        "before_s": Key("float", 10.0, "seconds of rows kept before an event's first row", low=0.0, high=86400.0),
        "after_s": Key("float", 5.0, "seconds of rows kept after the event's last row (its close)", low=0.0,
                       high=86400.0),
        "max_rows": Key("int", 200_000, "most rows of one capture; an event open that long is written then "
                        "(the ring holds up to this many rows while an event is open)", low=16, high=50_000_000),
        "max_count": Key("int", 100, "most captures kept; the oldest are dropped (and counted)", low=1,
                         high=1_000_000),
        "max_bytes": Key("int", 100_000_000, "most bytes the capture directory holds; the oldest are dropped",
                         low=1024, high=1 << 40),
        "mqtt_pull": Key("bool", True, "answer `vigil captures pull` on <prefix>/captures/request (needs [mqtt] "
                         "host)"),
    },
}

# --------------------------------------------------------------------------- [source], per kind

ADXL345_RATES = (6.25, 12.5, 25.0, 50.0, 100.0, 200.0, 400.0, 800.0, 1600.0, 3200.0)
_RANGES_G = (2, 4, 8, 16)
_RATE = "sampling rate in Hz"
_RETRY = {
    "retry_min_s": Key("float", 0.2, "first re-initialisation delay after an I2C error (doubles each failure)",
                       low=0.0, low_open=True),
    "retry_max_s": Key("float", 5.0, "longest delay between re-initialisation attempts (>= retry_min_s)",
                       low=0.0, low_open=True),
    "stall_s": Key("float", 1.0, "re-initialise the chip when no sample arrives for this long "
                   "(at least 10 sample periods)", low=0.0, low_open=True),
}
_PACING = {
    "pace": Key("str", "realtime", '"realtime": deliver rows at rate_hz * speed; "fast": as fast as the agent reads',
                choices=("realtime", "fast")),
    "speed": Key("float", 1.0, 'pacing multiplier for pace = "realtime" (2.0 = twice as fast)', low=0.0,
                 low_open=True),
    "loop": Key("bool", False, "start again at the first row after the last one"),
    "block_rows": Key("int", 256, 'rows per read with pace = "fast"; most rows per read when paced '
                      "(unless catching up)", low=1, high=65536),
}
_LINES = {
    "features": Key("names", [], "feature names, one per value on a line, in the bundle's order; "
                    "[] = the bundle's features"),
    "rate_hz": Key("float", 0.0, "sender's sampling rate: timestamps from the line count; 0 = arrival time", low=0.0),
    "delimiter": Key("str", "auto", 'value separator: "auto" (comma if the line has one, else whitespace), '
                     '"," or "whitespace"', choices=("auto", ",", "whitespace")),
}

SOURCE_SCHEMA: dict[str, dict[str, Key]] = {
    "replay": {
        "path": _req("path", "file to replay (CSV/TXT/NPY/WAV), relative to the config file"),
        "columns": Key("columns", [], "feature columns in this order; [] = every non-timestamp column"),
        "rows": Key("str", "", 'data-row slice "START:END" (0-based, END exclusive); "" = all rows'),
        "timestamp_column": Key("str", "", 'timestamp column name; "" = auto-detect (timestamp/time/date...)'),
        "rate_hz": Key("float", 0.0, f"{_RATE}; 0 = from the file (regular timestamps or WAV header)", low=0.0),
        **_PACING,
    },
    "stdin": dict(_LINES),
    "serial": {
        "port": _req("str", "serial device (/dev/ttyUSB0, /dev/serial0) or pyserial URL"),
        "baudrate": Key("int", 115200, "baud rate", low=1),
        **_LINES,
        "reconnect_min_s": Key("float", 0.5, "first reopen delay after a serial error (doubles each failure)",
                               low=0.0, low_open=True),
        "reconnect_max_s": Key("float", 30.0, "longest delay between reopen attempts (>= reconnect_min_s)",
                               low=0.0, low_open=True),
    },
    "adxl345": {
        "bus": Key("int", 1, "I2C bus number (/dev/i2c-N)", low=0),
        "address": Key("int", 0x53, "I2C address: 0x53 (SDO low) or 0x1D (SDO high)", choices=(0x53, 0x1D), hex=True),
        "rate_hz": Key("float", 400.0, "output data rate in Hz", choices=ADXL345_RATES),
        "range_g": Key("int", 4, "measurement range +-g", choices=_RANGES_G),
        "full_resolution": Key("bool", True, "full resolution (3.9 mg/LSB at every range) instead of 10-bit"),
        **_RETRY,
    },
    "mpu6050": {
        "bus": Key("int", 1, "I2C bus number (/dev/i2c-N)", low=0),
        "address": Key("int", 0x68, "I2C address: 0x68 (AD0 low) or 0x69 (AD0 high)", choices=(0x68, 0x69), hex=True),
        "rate_hz": Key("float", 200.0, "sample rate in Hz: 1000/n for n = 1..256 (1000, 500, 250, 200, 100, ...)",
                       low=1000.0 / 256, high=1000.0),
        "range_g": Key("int", 4, "measurement range +-g", choices=_RANGES_G),
        "dlpf_hz": Key("str", "auto", 'accel low-pass bandwidth in Hz; "auto" = the widest <= rate/2',
                       choices=("auto", "184", "94", "44", "21", "10", "5")),
        **_RETRY,
    },
    "synthetic": {
        "rate_hz": Key("float", 1000.0, _RATE, low=0.0, low_open=True),
        "seed": Key("int", 0, "random seed (same seed, same signal)", low=0),
        "faults": Key("bool", False, "inject bearing impacts, imbalance, spikes and a flat-lined axis "
                      "(needs n_rows >= 500)"),
        "n_rows": Key("int", 0, "rows to deliver (then end, or loop); 0 = endless normal signal", low=0),
        **_PACING,
    },
}
KINDS = tuple(SOURCE_SCHEMA)
#: Order of the sections in the effective config and in the README.
SECTION_ORDER = ("device", "bundle", "source", "quality", "alerts", "mqtt", "mqtt.tls", "spool",
                 "sinks", "health", "log", "rollout", "homeassistant", "metrics", "captures")


# --------------------------------------------------------------------------- TOML text


def toml_value(value: Any, spec: Key | None = None) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int) and spec is not None and spec.hex:
        return f"0x{value:02X}"
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, Path):
        value = str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


class EffectiveConfig(Protocol):
    """What :func:`render_config` reads (an :class:`edge_agent.config.AgentConfig`)."""

    @property
    def path(self) -> Path: ...

    @property
    def values(self) -> Mapping[str, Mapping[str, Any]]: ...

    @property
    def summary(self) -> list[str]: ...


def render_config(config: EffectiveConfig) -> str:
    """The effective configuration as TOML text (defaults filled in, secrets masked)."""
    lines = [f"# effective configuration of {config.path}", *(f"# {line}" for line in config.summary)]
    values = config.values
    for section in SECTION_ORDER:
        lines += ["", f"[{section}]"]
        table = values[section]
        specs = source_keys(str(table["kind"])) if section == "source" else SCHEMA[section]
        if section == "source":
            lines.append(f"kind = {toml_value(table['kind'])}")
        for key, spec in specs.items():
            value = table[key]
            if value is None:
                lines.append(f"# {key} = (unset{': ' + spec.unset if spec.unset else ''})")
            elif spec.secret and value:
                lines.append(f'{key} = "***"')
            else:
                lines.append(f"{key} = {toml_value(value, spec)}")
    return "\n".join(lines) + "\n"


def source_keys(kind: str) -> dict[str, Key]:
    return SOURCE_SCHEMA[kind]


# --------------------------------------------------------------------------- README key tables

README_BEGIN = "<!-- BEGIN generated key tables: edge_agent/config_schema.py render_key_tables() -->"
README_END = "<!-- END generated key tables -->"


def _shown_default(spec: Key) -> str:
    if spec.required:
        return "**required**"
    if spec.default is None:
        return "unset"
    shown = f"`{toml_value(spec.default, spec)}`"
    return f"{shown} (off)" if spec.kind == "path" and spec.default == "" else shown


def _allowed(spec: Key) -> str:
    if spec.choices:
        return " \\| ".join(toml_value(c, spec).strip('"') if isinstance(c, str) else toml_value(c, spec)
                            for c in spec.choices)
    return bounds_text(spec)


def bounds_text(spec: Key) -> str:
    """``1 .. 64``, ``> 0``, ``>= 0`` or ``""``."""
    if spec.low is not None and spec.high is not None and not spec.low_open:
        return f"{spec.low:g} .. {spec.high:g}"
    parts = []
    if spec.low is not None:
        parts.append(f"{'>' if spec.low_open else '>='} {spec.low:g}")
    if spec.high is not None:
        parts.append(f"<= {spec.high:g}")
    return " and ".join(parts)


def _table(prefix: str, keys: Mapping[str, Key]) -> list[str]:
    lines = ["| key | type | default | allowed | meaning |", "| --- | --- | --- | --- | --- |"]
    for key, spec in keys.items():
        doc = spec.doc.replace("|", "\\|")
        lines.append(f"| `{prefix}.{key}` | {spec.kind} | {_shown_default(spec)} | {_allowed(spec)} | {doc} |")
    return lines


def render_key_tables() -> str:
    """The "Every key and its default" part of firmware_configs/README.md."""
    lines = [README_BEGIN, ""]
    for section in SECTION_ORDER:
        if section == "source":
            continue
        lines += [f"### [{section}]", "", *_table(section, SCHEMA[section]), ""]
    kinds = ", ".join(f"`{k}`" for k in KINDS)
    lines += ["### [source]", "", f"`kind` (**required**) picks the driver: {kinds}; the other keys depend on it.", ""]
    for kind in KINDS:
        lines += [f"#### kind = \"{kind}\"", "", *_table("source", SOURCE_SCHEMA[kind]), ""]
    lines.append(README_END)
    return "\n".join(lines) + "\n"


def readme_with_key_tables(text: str) -> str:
    """``text`` with the part between the BEGIN/END markers replaced by :func:`render_key_tables`."""
    start, end = text.find(README_BEGIN), text.find(README_END)
    if start < 0 or end < start:
        raise ValueError("README has no generated key-table markers")
    return text[:start] + render_key_tables() + text[end + len(README_END) + 1:]


def write_key_tables(readme: str | Path) -> None:
    path = Path(readme)
    path.write_text(readme_with_key_tables(path.read_text(encoding="utf-8")), encoding="utf-8")
