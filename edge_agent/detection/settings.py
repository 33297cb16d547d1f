"""Typed, validated detection settings: what ``manifest["detection"]`` holds.

The trainer writes ``run.json["detection"]`` (``DetectionSettings.to_dict()``),
the converter copies it verbatim into the bundle manifest, and the device reads
it back with :meth:`DetectionSettings.from_dict`. Every section is optional in
the JSON (a missing one takes its defaults, so older bundles keep today's
behaviour: k = n = m = 1, no smoothing); an unknown key, a wrong type, an
out-of-range number, NaN or infinity is a one-line
:class:`~edge_agent.errors.VigilInputError` naming ``detection.<section>.<key>``.

Each dataclass validates itself in ``__post_init__``, so settings built in code
obey the same rules as settings read from a manifest.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any, ClassVar, TypeVar

from edge_agent.detection import _checks as check
from edge_agent.errors import VigilInputError

DETECTION_VERSION = 1
#: Upper bound of the dynamic threshold's buffer, so a manifest cannot ask for unbounded memory.
MAX_BUFFER_WINDOWS = 100_000
MAX_POLICY_WINDOWS = 100_000
FALSE_ALARM_UNITS = ("second", "minute", "hour", "day", "week", "window")
SCORE_MODES = ("window", "row")
ROW_REDUCTIONS = ("max", "mean")
MAX_ROW_DELAY = 100_000

_S = TypeVar("_S", bound="_Section")


def _set(obj: object, name: str, value: object) -> None:
    object.__setattr__(obj, name, value)  # frozen dataclass: normalise in __post_init__


class _Section:
    """Shared JSON round trip of a flat settings dataclass."""

    KEY: ClassVar[str] = "detection"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_dict(cls: type[_S], obj: object) -> _S:
        data = check.mapping(obj, cls.KEY)
        check.refuse_unknown(data, (f.name for f in fields(cls)), cls.KEY)  # type: ignore[arg-type]
        return cls(**data)

    def _key(self, name: str) -> str:
        return f"{self.KEY}.{name}"


@dataclass(frozen=True)
class DynamicThresholdSettings(_Section):
    """The causal Telemanom threshold (see :mod:`edge_agent.detection.dynamic_threshold`).

    ``buffer_seconds``: buffer length in seconds of signal (set when the sample
    rate is known); :meth:`resolved` turns it into ``buffer_windows`` for a
    given hop and rate. Without a rate, ``buffer_windows`` is used as is.
    """

    KEY: ClassVar[str] = "detection.dynamic_threshold"
    enabled: bool = True
    buffer_windows: int = 2000
    buffer_seconds: float | None = None
    min_windows: int = 500
    refit_every: int = 64
    z_min: float = 2.0
    z_max: float = 10.0
    z_step: float = 0.5
    prune_fraction: float = 0.13
    max_sequences: int = 5
    max_anomalous_fraction: float = 0.5

    def __post_init__(self) -> None:
        k = self._key
        _set(self, "enabled", check.boolean(self.enabled, k("enabled")))
        _set(self, "buffer_windows", check.integer(self.buffer_windows, k("buffer_windows"), lo=2,
                                                   hi=MAX_BUFFER_WINDOWS))
        _set(self, "buffer_seconds", check.optional_real(self.buffer_seconds, k("buffer_seconds"), lo=0.0,
                                                         lo_open=True))
        _set(self, "min_windows", check.integer(self.min_windows, k("min_windows"), lo=2, hi=self.buffer_windows))
        _set(self, "refit_every", check.integer(self.refit_every, k("refit_every"), lo=1,
                                                      hi=MAX_BUFFER_WINDOWS))
        _set(self, "z_min", check.real(self.z_min, k("z_min"), lo=0.0, hi=100.0))
        _set(self, "z_max", check.real(self.z_max, k("z_max"), lo=self.z_min, hi=100.0, lo_open=True))
        _set(self, "z_step", check.real(self.z_step, k("z_step"), lo=(self.z_max - self.z_min) / 400.0,
                                        lo_open=True))
        _set(self, "prune_fraction", check.real(self.prune_fraction, k("prune_fraction"), lo=0.0, hi=1.0,
                                                hi_open=True))
        _set(self, "max_sequences", check.integer(self.max_sequences, k("max_sequences"), lo=1))
        _set(self, "max_anomalous_fraction", check.real(self.max_anomalous_fraction,
                                                        k("max_anomalous_fraction"), lo=0.0, hi=1.0,
                                                        lo_open=True))

    def resolved(self, hop: int, rate_hz: float | None) -> DynamicThresholdSettings:
        """These settings with ``buffer_windows`` from ``buffer_seconds`` (when the rate is known)."""
        if self.buffer_seconds is None or not rate_hz:
            return self
        windows = math.ceil(self.buffer_seconds * float(rate_hz) / max(int(hop), 1))
        windows = min(max(windows, 2), MAX_BUFFER_WINDOWS)
        return replace(self, buffer_windows=windows, min_windows=min(self.min_windows, windows),
                       refit_every=min(self.refit_every, windows))


@dataclass(frozen=True)
class SensorHealthSettings(_Section):
    """Limits of the sensor-health checks (see :mod:`edge_agent.detection.sensor_faults`).

    Durations are in samples (the bundle fixes the rate, so samples are exact):
    the checks judge consecutive chunks of ``check_samples`` samples.
    The per-feature training statistics they are compared with come from the
    bundle as :class:`~edge_agent.detection.stats.FeatureStats`.
    """

    KEY: ClassVar[str] = "detection.sensor_health"
    enabled: bool = True
    check_samples: int = 128
    flatline_std_ratio: float = 0.01
    clip_fraction: float = 0.1
    clip_at_training_bounds: bool = True
    full_scale: tuple[float, float] | None = None
    out_of_range_margin: float = 6.0
    dropout_min_missing: int = 1
    hold_samples: int = 256

    def __post_init__(self) -> None:
        k = self._key
        _set(self, "enabled", check.boolean(self.enabled, k("enabled")))
        _set(self, "check_samples", check.integer(self.check_samples, k("check_samples"), lo=2, hi=100_000))
        _set(self, "flatline_std_ratio", check.real(self.flatline_std_ratio, k("flatline_std_ratio"), lo=0.0,
                                                    hi=1.0, hi_open=True))
        _set(self, "clip_fraction", check.real(self.clip_fraction, k("clip_fraction"), lo=0.0, hi=1.0,
                                               lo_open=True))
        _set(self, "clip_at_training_bounds", check.boolean(self.clip_at_training_bounds,
                                                            k("clip_at_training_bounds")))
        if self.full_scale is not None:
            _set(self, "full_scale", check.pair(self.full_scale, k("full_scale")))
        _set(self, "out_of_range_margin", check.real(self.out_of_range_margin, k("out_of_range_margin"),
                                                     lo=0.0, lo_open=True))
        _set(self, "dropout_min_missing", check.integer(self.dropout_min_missing, k("dropout_min_missing"),
                                                        lo=1))
        _set(self, "hold_samples", check.integer(self.hold_samples, k("hold_samples"), lo=1))


@dataclass(frozen=True)
class AlertPolicySettings(_Section):
    """The recommended alert policy (see :mod:`edge_agent.detection.policy`).

    ``k``, ``n``, ``m``, ``cooldown`` are in windows and ``smoothing`` is the
    EWMA alpha (None = no smoothing), what the event detector consumes.
    ``hop_seconds`` (None without a sample rate) states those counts in time.
    """

    KEY: ClassVar[str] = "detection.policy"
    k: int = 1
    n: int = 1
    m: int = 1
    cooldown: int = 0
    smoothing: float | None = None
    hop_seconds: float | None = None

    def __post_init__(self) -> None:
        k = self._key
        _set(self, "n", check.integer(self.n, k("n"), lo=1, hi=MAX_POLICY_WINDOWS))
        _set(self, "k", check.integer(self.k, k("k"), lo=1, hi=self.n))
        _set(self, "m", check.integer(self.m, k("m"), lo=1, hi=MAX_POLICY_WINDOWS))
        _set(self, "cooldown", check.integer(self.cooldown, k("cooldown"), lo=0, hi=MAX_POLICY_WINDOWS))
        _set(self, "smoothing", check.optional_real(self.smoothing, k("smoothing"), lo=0.0, hi=1.0,
                                                    lo_open=True))
        _set(self, "hop_seconds", check.optional_real(self.hop_seconds, k("hop_seconds"), lo=0.0,
                                                      lo_open=True))

    def seconds(self) -> dict[str, float] | None:
        """``n``, ``m`` and ``cooldown`` as durations, or None without a sample rate."""
        if self.hop_seconds is None:
            return None
        return {"n": self.n * self.hop_seconds, "m": self.m * self.hop_seconds,
                "cooldown": self.cooldown * self.hop_seconds}


@dataclass(frozen=True)
class FalseAlarmInfo(_Section):
    """The static threshold's calibration: target and expected false events per ``unit``."""

    KEY: ClassVar[str] = "detection.false_alarm"
    target: float
    unit: str = "day"
    expected: float | None = None
    method: str | None = None

    def __post_init__(self) -> None:
        k = self._key
        _set(self, "target", check.real(self.target, k("target"), lo=0.0, lo_open=True))
        _set(self, "unit", check.choice(self.unit, k("unit"), FALSE_ALARM_UNITS))
        _set(self, "expected", check.optional_real(self.expected, k("expected"), lo=0.0))
        if self.method is not None:
            _set(self, "method", check.text(self.method, k("method")))

    @classmethod
    def from_dict(cls, obj: object) -> FalseAlarmInfo:
        data = check.mapping(obj, cls.KEY)
        if "target" not in data:
            raise VigilInputError("is required", key=f"{cls.KEY}.target")
        return super().from_dict(data)


@dataclass(frozen=True)
class ScoreSettings(_Section):
    """What the decisions are made on (see :mod:`edge_agent.core.row_scores`).

    ``mode = "window"``: each window's mean error, attributed to its last row
    (a bundle without this section). ``mode = "row"``: each row's error
    averaged over the windows that covered it, finalized ``delay_rows``
    samples later (None = window - 1: every covering window); each window's
    decision is on the ``reduce`` (max or mean) of the rows it finalized, and
    an event starts at its first anomalous row.
    """

    KEY: ClassVar[str] = "detection.score"
    mode: str = "window"
    delay_rows: int | None = None
    reduce: str = "max"

    def __post_init__(self) -> None:
        k = self._key
        _set(self, "mode", check.choice(self.mode, k("mode"), SCORE_MODES))
        if self.delay_rows is not None:
            _set(self, "delay_rows", check.integer(self.delay_rows, k("delay_rows"), lo=0, hi=MAX_ROW_DELAY))
        _set(self, "reduce", check.choice(self.reduce, k("reduce"), ROW_REDUCTIONS))


_SECTIONS: dict[str, type[_Section]] = {
    "policy": AlertPolicySettings,
    "dynamic_threshold": DynamicThresholdSettings,
    "sensor_health": SensorHealthSettings,
    "score": ScoreSettings,
}


@dataclass(frozen=True)
class DetectionSettings:
    """Everything the device needs to turn scores and samples into events."""

    KEY: ClassVar[str] = "detection"
    policy: AlertPolicySettings = AlertPolicySettings()
    dynamic_threshold: DynamicThresholdSettings = DynamicThresholdSettings()
    sensor_health: SensorHealthSettings = SensorHealthSettings()
    score: ScoreSettings = ScoreSettings()
    skill_ratio: float | None = None
    false_alarm: FalseAlarmInfo | None = None
    version: int = DETECTION_VERSION

    def __post_init__(self) -> None:
        for name, kind in _SECTIONS.items():
            if not isinstance(getattr(self, name), kind):
                raise VigilInputError(f"must be a {kind.__name__}", key=f"{self.KEY}.{name}")
        if self.false_alarm is not None and not isinstance(self.false_alarm, FalseAlarmInfo):
            raise VigilInputError("must be a FalseAlarmInfo", key=f"{self.KEY}.false_alarm")
        _set(self, "skill_ratio", check.optional_real(self.skill_ratio, f"{self.KEY}.skill_ratio", lo=0.0))
        _set(self, "version", check.integer(self.version, f"{self.KEY}.version", lo=1, hi=DETECTION_VERSION))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"version": self.version}
        out.update({name: getattr(self, name).to_dict() for name in _SECTIONS})
        if self.skill_ratio is not None:
            out["skill_ratio"] = self.skill_ratio
        if self.false_alarm is not None:
            out["false_alarm"] = self.false_alarm.to_dict()
        return out

    @classmethod
    def from_dict(cls, obj: object) -> DetectionSettings:
        """Parse ``manifest["detection"]``; ``None`` (an older bundle) gives the defaults."""
        if obj is None:
            return cls()
        data = check.mapping(obj, cls.KEY)
        check.refuse_unknown(data, (*_SECTIONS, "skill_ratio", "false_alarm", "version"), cls.KEY)
        sections: dict[str, Any] = {name: kind.from_dict(data[name]) for name, kind in _SECTIONS.items()
                                    if name in data}
        false_alarm = data.get("false_alarm")
        return cls(**sections, skill_ratio=data.get("skill_ratio"),
                   false_alarm=None if false_alarm is None else FalseAlarmInfo.from_dict(false_alarm),
                   version=data.get("version", DETECTION_VERSION))

