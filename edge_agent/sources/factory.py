"""Build a source from the agent TOML's ``[source]`` options.

The keys, defaults and checks of every kind are in
:data:`edge_agent.config_schema.SOURCE_SCHEMA` (validated by
:func:`edge_agent.config_values.parse_source`); this module only turns the typed
options (:mod:`edge_agent.config_sections`) into an unopened
:class:`~edge_agent.sources.base.Source`. :func:`make_source` also takes a raw
``[source]`` table (tests, tools), parsed by that same one parser.

Feature names: adxl345, mpu6050 and synthetic produce ``["x", "y", "z"]`` (in g);
replay uses the file's columns (or ``columns``); stdin and serial use
``features``, or ``default_features`` (the bundle's) when that is empty.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from edge_agent.config_schema import KINDS
from edge_agent.config_sections import (
    Adxl345Options,
    Mpu6050Options,
    ReplayOptions,
    SerialOptions,
    SourceOptions,
    StdinOptions,
    SyntheticOptions,
    build_source_options,
)
from edge_agent.config_values import parse_source
from edge_agent.errors import VigilInputError
from edge_agent.sources.base import Source

__all__ = ["KINDS", "check_options", "make_source", "parse_source_options"]


def parse_source_options(table: Mapping[str, Any], base_dir: Path | None = None) -> SourceOptions:
    """A raw ``[source]`` table -> typed options (paths resolved against ``base_dir``)."""
    options = build_source_options(parse_source(table, base_dir))
    check_options(options)
    return options


def check_options(options: SourceOptions) -> None:
    """What only the driver knows: the MPU6050's rate must divide 1 kHz."""
    if isinstance(options, Mpu6050Options):
        from edge_agent.sources.i2c_mpu6050 import sample_rate_divider

        try:
            sample_rate_divider(options.rate_hz)
        except ValueError as exc:
            raise VigilInputError(str(exc), key="source.rate_hz") from None


def make_source(options: SourceOptions | Mapping[str, Any], *, base_dir: Path | None = None,
                default_features: list[str] | None = None) -> Source:
    """The (unopened) source the options describe; a raw table is validated first."""
    if isinstance(options, Mapping):
        options = parse_source_options(options, base_dir)
    else:
        check_options(options)
    builder: Callable[[Any, list[str] | None], Source] = _BUILDERS[options.kind]
    try:
        return builder(options, default_features)
    except ValueError as exc:  # a constructor's own check the schema did not anticipate
        raise VigilInputError(str(exc), key="source") from None


def _replay(opt: ReplayOptions, _features: list[str] | None) -> Source:
    from edge_agent.sources.replay import ReplaySource

    try:
        return ReplaySource(opt.path, columns=list(opt.columns) or None, rows=opt.row_slice,
                            timestamp_column=opt.timestamp_column or None, rate_hz=opt.rate_hz or None,
                            pace=opt.pace, speed=opt.speed, loop=opt.loop, block_rows=opt.block_rows)
    except VigilInputError as exc:
        if exc.key is not None and exc.key.startswith("source."):
            raise
        raise VigilInputError(exc.detail, file=exc.file, row=exc.row, column=exc.column,
                              key=_replay_error_key(exc, opt)) from None


def _replay_error_key(exc: VigilInputError, opt: ReplayOptions) -> str:
    """Point a reader error at the [source] key that can fix it."""
    if exc.key == "rows":
        return "source.rows"
    if exc.column is not None and exc.column == opt.timestamp_column:
        return "source.timestamp_column"
    if exc.column is not None and exc.row is None:
        return "source.columns"  # a named column that is missing or unusable
    return "source.path"


def line_features(opt: StdinOptions | SerialOptions, default_features: list[str] | None) -> list[str]:
    features = list(opt.features) or list(default_features or [])
    if not features:
        raise VigilInputError(f"is required for kind {opt.kind!r} without a bundle: feature names, one per value "
                              "on a line", key="source.features")
    return features


def _stdin(opt: StdinOptions, default_features: list[str] | None) -> Source:
    from edge_agent.sources.stdin import StdinSource

    return StdinSource(line_features(opt, default_features), rate_hz=opt.rate_hz or None, delimiter=opt.delimiter)


def _serial(opt: SerialOptions, default_features: list[str] | None) -> Source:
    from edge_agent.sources.serial_line import SerialLineSource

    return SerialLineSource(opt.port, line_features(opt, default_features), baudrate=opt.baudrate,
                            rate_hz=opt.rate_hz or None, delimiter=opt.delimiter,
                            reconnect_min_s=opt.reconnect_min_s, reconnect_max_s=opt.reconnect_max_s)


def _i2c_common(opt: Adxl345Options | Mpu6050Options) -> dict[str, Any]:
    return {"bus_number": opt.bus, "address": opt.address, "rate_hz": opt.rate_hz, "range_g": opt.range_g,
            "retry_min_s": opt.retry_min_s, "retry_max_s": opt.retry_max_s, "stall_s": opt.stall_s}


# The I2C drivers are imported only for their own kind (a replay or synthetic agent does not map them).
def _adxl345(opt: Adxl345Options, _features: list[str] | None) -> Source:
    from edge_agent.sources.i2c_adxl345 import ADXL345Source

    return ADXL345Source(full_resolution=opt.full_resolution, **_i2c_common(opt))


def _mpu6050(opt: Mpu6050Options, _features: list[str] | None) -> Source:
    from edge_agent.sources.i2c_mpu6050 import MPU6050Source

    dlpf: int | str = opt.dlpf_hz if opt.dlpf_hz == "auto" else int(opt.dlpf_hz)
    return MPU6050Source(dlpf_hz=dlpf, **_i2c_common(opt))


def _synthetic(opt: SyntheticOptions, _features: list[str] | None) -> Source:
    from edge_agent.sources.synthetic import SyntheticSource

    return SyntheticSource(rate_hz=opt.rate_hz, seed=opt.seed, faults=opt.faults, n_rows=opt.n_rows, loop=opt.loop,
                           pace=opt.pace, speed=opt.speed, block_rows=opt.block_rows)


_BUILDERS: dict[str, Callable[[Any, list[str] | None], Source]] = {
    "replay": _replay, "stdin": _stdin, "serial": _serial, "adxl345": _adxl345, "mpu6050": _mpu6050,
    "synthetic": _synthetic,
}
