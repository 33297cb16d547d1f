"""Build a source from the agent TOML's ``[source]`` table.

``make_source(section, base_dir=...)`` validates the table (unknown key, wrong
type, out-of-range value -> :class:`VigilInputError` naming ``source.<key>``, one
line) and returns an unopened :class:`~edge_agent.sources.base.Source`.
``SOURCE_DEFAULTS[kind]`` holds every optional key's default, ``SOURCE_REQUIRED[kind]``
the keys without one, ``SOURCE_HELP[kind][key]`` one line per key (check-config
and firmware_configs/README.md print these). ``effective_source_section`` returns
the validated table with defaults filled in.

Feature names: adxl345, mpu6050 and synthetic produce ``["x", "y", "z"]`` (in g);
replay uses the file's columns (or ``columns``); stdin and serial use ``features``
(required unless the caller passes ``default_features``, e.g. the bundle's).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_agent.errors import VigilInputError
from edge_agent.readers import parse_columns, parse_rows
from edge_agent.sources import i2c_adxl345, i2c_mpu6050
from edge_agent.sources.base import Source

REQUIRED: Any = object()


@dataclass(frozen=True)
class Opt:
    default: Any
    type: str  # "int" | "float" | "bool" | "str" | "names" (list of str) | "columns" (list or "a,b")
    help: str
    choices: tuple = ()
    min: float | None = None
    max: float | None = None
    exclusive_min: bool = False


_RATE = "sampling rate in Hz"
_RETRY = {
    "retry_min_s": Opt(0.2, "float", "first re-initialisation delay after an I2C error (doubles each failure)",
                       min=0.0, exclusive_min=True),
    "retry_max_s": Opt(5.0, "float", "longest delay between re-initialisation attempts", min=0.0,
                       exclusive_min=True),
    "stall_s": Opt(1.0, "float", "re-initialise the chip when no sample arrives for this long "
                   "(at least 10 sample periods)", min=0.0, exclusive_min=True),
}
_PACING = {
    "pace": Opt("realtime", "str", '"realtime": deliver rows at rate_hz * speed; "fast": as fast as the agent reads',
                choices=("realtime", "fast")),
    "speed": Opt(1.0, "float", "pacing multiplier for pace = \"realtime\" (2.0 = twice as fast)", min=0.0,
                 exclusive_min=True),
    "loop": Opt(False, "bool", "start again at the first row after the last one"),
    "block_rows": Opt(256, "int", "rows per read with pace = \"fast\"; most rows per read when paced "
                      "(unless catching up)", min=1, max=65536),
}
_LINES = {
    "features": Opt(REQUIRED, "names", "feature names, one per value on a line (must match the bundle)"),
    "rate_hz": Opt(0.0, "float", "sender's sampling rate: timestamps from the line count; 0 = arrival time",
                   min=0.0),
    "delimiter": Opt("auto", "str", 'value separator: "auto" (comma if the line has one, else whitespace), '
                     '"," or "whitespace"', choices=("auto", ",", "whitespace")),
}

SOURCE_OPTIONS: dict[str, dict[str, Opt]] = {
    "replay": {
        "path": Opt(REQUIRED, "str", "file to replay (CSV/TXT/NPY/WAV), relative to the config file"),
        "columns": Opt([], "columns", "feature columns in this order; [] = every non-timestamp column"),
        "rows": Opt("", "str", 'data-row slice "START:END" (0-based, END exclusive); "" = all rows'),
        "timestamp_column": Opt("", "str", 'timestamp column name; "" = auto-detect (timestamp/time/date...)'),
        "rate_hz": Opt(0.0, "float", f"{_RATE}; 0 = from the file (regular timestamps or WAV header)", min=0.0),
        **_PACING,
    },
    "stdin": dict(_LINES),
    "serial": {
        "port": Opt(REQUIRED, "str", "serial device (/dev/ttyUSB0, /dev/serial0) or pyserial URL"),
        "baudrate": Opt(115200, "int", "baud rate", min=1),
        **_LINES,
        "reconnect_min_s": Opt(0.5, "float", "first reopen delay after a serial error (doubles each failure)",
                               min=0.0, exclusive_min=True),
        "reconnect_max_s": Opt(30.0, "float", "longest delay between reopen attempts", min=0.0, exclusive_min=True),
    },
    "adxl345": {
        "bus": Opt(1, "int", "I2C bus number (/dev/i2c-N)", min=0),
        "address": Opt(i2c_adxl345.DEFAULT_ADDRESS, "int", "I2C address: 0x53 (SDO low) or 0x1D (SDO high)",
                       choices=(0x53, 0x1D)),
        "rate_hz": Opt(400.0, "float", f"output data rate in Hz, one of "
                       f"{', '.join(f'{r:g}' for r in i2c_adxl345.SUPPORTED_RATES)}",
                       choices=i2c_adxl345.SUPPORTED_RATES),
        "range_g": Opt(4, "int", "measurement range +-g: 2, 4, 8 or 16", choices=(2, 4, 8, 16)),
        "full_resolution": Opt(True, "bool", "full resolution (3.9 mg/LSB at every range) instead of 10-bit"),
        **_RETRY,
    },
    "mpu6050": {
        "bus": Opt(1, "int", "I2C bus number (/dev/i2c-N)", min=0),
        "address": Opt(i2c_mpu6050.DEFAULT_ADDRESS, "int", "I2C address: 0x68 (AD0 low) or 0x69 (AD0 high)",
                       choices=(0x68, 0x69)),
        "rate_hz": Opt(200.0, "float", "sample rate in Hz: 1000/n for n = 1..256 (1000, 500, 250, 200, 100, ...)",
                       min=1000.0 / 256, max=1000.0),
        "range_g": Opt(4, "int", "measurement range +-g: 2, 4, 8 or 16", choices=(2, 4, 8, 16)),
        "dlpf_hz": Opt("auto", "str", 'accel low-pass bandwidth: "auto" (widest <= rate/2) or '
                       '"184", "94", "44", "21", "10", "5"', choices=("auto", "184", "94", "44", "21", "10", "5")),
        **_RETRY,
    },
    "synthetic": {
        "rate_hz": Opt(1000.0, "float", _RATE, min=0.0, exclusive_min=True),
        "seed": Opt(0, "int", "random seed (same seed, same signal)", min=0),
        "faults": Opt(False, "bool", "inject bearing impacts, imbalance, spikes and a flat-lined axis "
                      "(needs n_rows >= 500)"),
        "n_rows": Opt(0, "int", "rows to deliver (then end, or loop); 0 = endless normal signal", min=0),
        **_PACING,
    },
}
KINDS = tuple(SOURCE_OPTIONS)
SOURCE_DEFAULTS: dict[str, dict[str, Any]] = {
    kind: {key: opt.default for key, opt in opts.items() if opt.default is not REQUIRED}
    for kind, opts in SOURCE_OPTIONS.items()
}
SOURCE_REQUIRED: dict[str, tuple[str, ...]] = {
    kind: tuple(key for key, opt in opts.items() if opt.default is REQUIRED) for kind, opts in SOURCE_OPTIONS.items()
}
SOURCE_HELP: dict[str, dict[str, str]] = {
    kind: {key: opt.help for key, opt in opts.items()} for kind, opts in SOURCE_OPTIONS.items()
}


def _fail(key: str, message: str) -> VigilInputError:
    return VigilInputError(message, key=f"source.{key}")


def _typed(key: str, value: Any, opt: Opt) -> Any:
    kind = opt.type
    if kind == "bool":
        if not isinstance(value, bool):
            raise _fail(key, f"must be true or false, got {value!r}")
        return value
    if kind in ("int", "float"):
        ok = isinstance(value, int) or (kind == "float" and isinstance(value, float))
        if isinstance(value, bool) or not ok:
            raise _fail(key, f"must be {'an integer' if kind == 'int' else 'a number'}, got {value!r}")
        return float(value) if kind == "float" else int(value)
    if kind == "str":
        if isinstance(value, int) and not isinstance(value, bool) and opt.choices:
            return str(value)  # dlpf_hz = 44 written without quotes; the choices check follows
        if not isinstance(value, str):
            raise _fail(key, f"must be a string, got {value!r}")
        return value
    if kind == "columns" and isinstance(value, str):
        try:
            return parse_columns(value) or []
        except VigilInputError as exc:
            raise _fail(key, exc.detail) from None
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise _fail(key, f"must be a list of names like [\"x\", \"y\", \"z\"], got {value!r}")
    if len(set(value)) != len(value):
        raise _fail(key, f"lists a name twice: {value!r}")
    return list(value)


def _check_range(key: str, value: Any, opt: Opt) -> None:
    if opt.choices and value not in opt.choices:
        shown = ", ".join(f"0x{c:02x}" if key == "address" else f"{c:g}" if isinstance(c, float) else str(c)
                          for c in opt.choices)
        raise _fail(key, f"must be one of {shown}, got {value!r}")
    if opt.min is not None and (value < opt.min or (opt.exclusive_min and value == opt.min)):
        raise _fail(key, f"must be {'>' if opt.exclusive_min else '>='} {opt.min:g}, got {value!r}")
    if opt.max is not None and value > opt.max:
        raise _fail(key, f"must be <= {opt.max:g}, got {value!r}")


def effective_source_section(section: dict[str, Any], *,
                             default_features: list[str] | None = None) -> dict[str, Any]:
    """The validated ``[source]`` table with every default filled in (``kind`` first)."""
    kind = section.get("kind")
    if kind is None:
        raise _fail("kind", f"is required; one of {', '.join(KINDS)}")
    if kind not in SOURCE_OPTIONS:
        raise _fail("kind", f"must be one of {', '.join(KINDS)}, got {kind!r}")
    options = SOURCE_OPTIONS[kind]
    for key in section:
        if key != "kind" and key not in options:
            raise _fail(key, f"unknown key for kind {kind!r}; allowed: {', '.join(options)}")
    out: dict[str, Any] = {"kind": kind}
    for key, opt in options.items():
        if key in section:
            value = _typed(key, section[key], opt)
            _check_range(key, value, opt)
        elif opt.default is not REQUIRED:
            value = opt.default
        elif key == "features" and default_features:
            value = list(default_features)
        else:
            raise _fail(key, f"is required for kind {kind!r}: {opt.help}")
        out[key] = value
    _check_combinations(out)
    return out


def _check_combinations(cfg: dict[str, Any]) -> None:
    kind = cfg["kind"]
    if kind == "serial" and cfg["reconnect_max_s"] < cfg["reconnect_min_s"]:
        raise _fail("reconnect_max_s", "must be >= reconnect_min_s")
    if kind in ("adxl345", "mpu6050") and cfg["retry_max_s"] < cfg["retry_min_s"]:
        raise _fail("retry_max_s", "must be >= retry_min_s")
    if kind == "mpu6050":
        try:
            i2c_mpu6050.sample_rate_divider(cfg["rate_hz"])
        except ValueError as exc:
            raise _fail("rate_hz", str(exc)) from None
    if kind == "synthetic" and cfg["faults"] and cfg["n_rows"] < 500:
        raise _fail("n_rows", "must be >= 500 when faults = true (faults are placed by row count)")
    if kind == "replay" and cfg["rows"]:
        try:
            parse_rows(cfg["rows"])
        except VigilInputError as exc:
            raise _fail("rows", exc.detail) from None


def make_source(section: dict[str, Any], *, base_dir: Path,
                default_features: list[str] | None = None) -> Source:
    """Validate ``section`` and build the (unopened) source it describes."""
    cfg = effective_source_section(section, default_features=default_features)
    builder = _BUILDERS[cfg["kind"]]
    try:
        return builder(cfg, Path(base_dir))
    except ValueError as exc:  # a constructor's own check the table checks did not anticipate
        raise VigilInputError(str(exc), key="source") from None


def _replay(cfg: dict[str, Any], base_dir: Path) -> Source:
    from edge_agent.sources.replay import ReplaySource

    path = Path(cfg["path"]).expanduser()
    path = path if path.is_absolute() else base_dir / path
    try:
        return ReplaySource(path, columns=cfg["columns"] or None, rows=parse_rows(cfg["rows"]),
                            timestamp_column=cfg["timestamp_column"] or None, rate_hz=cfg["rate_hz"] or None,
                            pace=cfg["pace"], speed=cfg["speed"], loop=cfg["loop"], block_rows=cfg["block_rows"])
    except VigilInputError as exc:
        if exc.key is not None and exc.key.startswith("source."):
            raise
        raise VigilInputError(exc.detail, file=exc.file, row=exc.row, column=exc.column,
                              key=_replay_error_key(exc, cfg)) from None


def _replay_error_key(exc: VigilInputError, cfg: dict[str, Any]) -> str:
    """Point a reader error at the [source] key that can fix it."""
    if exc.key == "rows":
        return "source.rows"
    if exc.column is not None and exc.column == cfg["timestamp_column"]:
        return "source.timestamp_column"
    if exc.column is not None and exc.row is None:
        return "source.columns"  # a named column that is missing or unusable
    return "source.path"


def _stdin(cfg: dict[str, Any], base_dir: Path) -> Source:
    from edge_agent.sources.stdin import StdinSource

    return StdinSource(cfg["features"], rate_hz=cfg["rate_hz"] or None, delimiter=cfg["delimiter"])


def _serial(cfg: dict[str, Any], base_dir: Path) -> Source:
    from edge_agent.sources.serial_line import SerialLineSource

    return SerialLineSource(cfg["port"], cfg["features"], baudrate=cfg["baudrate"], rate_hz=cfg["rate_hz"] or None,
                            delimiter=cfg["delimiter"], reconnect_min_s=cfg["reconnect_min_s"],
                            reconnect_max_s=cfg["reconnect_max_s"])


def _i2c_common(cfg: dict[str, Any]) -> dict[str, Any]:
    return {k: cfg[k] for k in ("address", "rate_hz", "range_g", "retry_min_s", "retry_max_s", "stall_s")} | {
        "bus_number": cfg["bus"]}


def _adxl345(cfg: dict[str, Any], base_dir: Path) -> Source:
    return i2c_adxl345.ADXL345Source(full_resolution=cfg["full_resolution"], **_i2c_common(cfg))


def _mpu6050(cfg: dict[str, Any], base_dir: Path) -> Source:
    dlpf = cfg["dlpf_hz"] if cfg["dlpf_hz"] == "auto" else int(cfg["dlpf_hz"])
    return i2c_mpu6050.MPU6050Source(dlpf_hz=dlpf, **_i2c_common(cfg))


def _synthetic(cfg: dict[str, Any], base_dir: Path) -> Source:
    from edge_agent.sources.synthetic import SyntheticSource

    return SyntheticSource(**{k: cfg[k] for k in ("rate_hz", "seed", "faults", "n_rows", "loop", "pace", "speed",
                                                   "block_rows")})


_BUILDERS = {"replay": _replay, "stdin": _stdin, "serial": _serial, "adxl345": _adxl345, "mpu6050": _mpu6050,
             "synthetic": _synthetic}
