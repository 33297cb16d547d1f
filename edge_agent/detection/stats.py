"""Per-feature training statistics the sensor-health checks compare live samples with.

The trainer records them in ``run.json["training"]["feature_stats"]``; the
bundle carries them to the device. Accepted JSON forms: a list of objects with
a ``name``, or an object mapping each feature name to its statistics::

    [{"name": "ax", "min": -1.2, "max": 1.3, "std": 0.41, "resolution": 0.0039}, ...]
    {"ax": {"min": -1.2, "max": 1.3, "std": 0.41, "resolution": 0.0039}, ...}

``resolution`` is the smallest step the sensor (or the recorded data) can
show; 0 when unknown. ``constant``: the feature held one value in training.
``at_bounds_fraction`` (optional): the share of training samples sitting at
the training min or max; a feature that often sits there (a valve at 100 %)
is not checked for clipping at those bounds. ``window_std`` (optional): the
median std of a training chunk of ``check_samples`` samples, the flatline
reference (a slow signal's window std is far below its overall std).
``flat_fraction`` (optional): the share of those training windows that the
flatline rule would flag; a feature that is often flat is not checked.

:func:`measure_feature_stats` computes all of them from training rows with the
same rules the device applies (numpy only: the trainer can call it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from edge_agent.detection import _checks as check
from edge_agent.detection.settings import SensorHealthSettings
from edge_agent.errors import VigilInputError

_FIELDS = ("name", "min", "max", "std", "resolution", "constant", "at_bounds_fraction", "window_std",
           "flat_fraction")


@dataclass(frozen=True)
class FeatureStats:
    KEY: ClassVar[str] = "training.feature_stats"
    name: str
    min: float
    max: float
    std: float
    resolution: float = 0.0
    constant: bool = False
    at_bounds_fraction: float | None = None
    window_std: float | None = None
    flat_fraction: float | None = None

    def __post_init__(self) -> None:
        key = f"{self.KEY}.{self.name}" if isinstance(self.name, str) else self.KEY
        object.__setattr__(self, "name", check.text(self.name, f"{key}.name"))
        lo = check.real(self.min, f"{key}.min")
        object.__setattr__(self, "min", lo)
        object.__setattr__(self, "max", check.real(self.max, f"{key}.max", lo=lo))
        object.__setattr__(self, "std", check.real(self.std, f"{key}.std", lo=0.0))
        object.__setattr__(self, "resolution", check.real(self.resolution, f"{key}.resolution", lo=0.0))
        object.__setattr__(self, "constant", check.boolean(self.constant, f"{key}.constant"))
        object.__setattr__(self, "at_bounds_fraction", check.optional_real(
            self.at_bounds_fraction, f"{key}.at_bounds_fraction", lo=0.0, hi=1.0))
        object.__setattr__(self, "window_std", check.optional_real(self.window_std, f"{key}.window_std", lo=0.0))
        object.__setattr__(self, "flat_fraction", check.optional_real(
            self.flat_fraction, f"{key}.flat_fraction", lo=0.0, hi=1.0))

    @property
    def is_constant(self) -> bool:
        return self.constant or self.max == self.min

    @property
    def spread(self) -> float:
        """A nonzero scale for margins: the std, else the resolution, else a small tolerance."""
        for value in (self.std, self.resolution):
            if value > 0:
                return value
        return max(1e-3 * abs(self.max), 1e-3)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "min": self.min, "max": self.max, "std": self.std,
                               "resolution": self.resolution, "constant": self.constant}
        for name in ("at_bounds_fraction", "window_std", "flat_fraction"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        return out

    @classmethod
    def from_dict(cls, obj: object, name: str | None = None) -> FeatureStats:
        data = dict(check.mapping(obj, cls.KEY if name is None else f"{cls.KEY}.{name}"))
        if name is not None:
            data.setdefault("name", name)
        key = f"{cls.KEY}.{data.get('name', '?')}"
        check.refuse_unknown(data, _FIELDS, key)
        for required in ("name", "min", "max", "std"):
            if required not in data:
                raise VigilInputError("is required", key=f"{key}.{required}")
        return cls(**data)


def feature_stats_from_json(obj: object, features: Sequence[str] | None = None) -> tuple[FeatureStats, ...]:
    """Parse either JSON form; with ``features``, check and return them in that order."""
    if isinstance(obj, Mapping):
        stats = [FeatureStats.from_dict(value, name=str(name)) for name, value in obj.items()]
    elif isinstance(obj, list):
        stats = [FeatureStats.from_dict(item) for item in obj]
    else:
        raise VigilInputError("must be a list of objects or an object per feature", key=FeatureStats.KEY)
    if features is None:
        return tuple(stats)
    by_name = {s.name: s for s in stats}
    for name in features:
        if name not in by_name:
            raise VigilInputError("no training statistics for this feature", key=f"{FeatureStats.KEY}.{name}")
    return tuple(by_name[name] for name in features)


def measure_feature_stats(values: np.ndarray, names: Sequence[str],
                          settings: SensorHealthSettings | None = None) -> tuple[FeatureStats, ...]:
    """Training statistics of ``values`` ``[rows, features]`` (finite rows only), for the sensor checks.

    ``resolution`` is the smallest nonzero step between sorted distinct values
    (the data's quantum; for float noise it is tiny, which is harmless).
    """
    settings = settings or SensorHealthSettings()
    data = np.asarray(values, dtype=np.float64)
    if data.ndim != 2 or data.shape[1] != len(names) or data.shape[0] == 0:
        raise ValueError(f"need values [rows > 0, {len(names)}], got shape {data.shape}")
    return tuple(_measure_one(data[:, i], name, settings) for i, name in enumerate(names))


def _measure_one(column: np.ndarray, name: str, settings: SensorHealthSettings) -> FeatureStats:
    column = column[np.isfinite(column)]
    if column.size == 0:
        raise ValueError(f"feature {name!r} has no finite training value")
    lo, hi = float(column.min()), float(column.max())
    steps = np.diff(np.unique(column))
    resolution = float(steps.min()) if steps.size else 0.0
    at_bounds = float(np.mean((column == lo) | (column == hi))) if hi > lo else 1.0
    window_std = flat_fraction = None
    width = settings.check_samples
    chunks = column.size // width
    if chunks and hi > lo:
        blocks = column[: chunks * width].reshape(chunks, width)
        stds = blocks.std(axis=1)
        window_std = float(np.median(stds))
        flat = (np.ptp(blocks, axis=1) == 0) | (stds < settings.flatline_std_ratio * window_std)
        flat_fraction = float(flat.mean())
    return FeatureStats(name=name, min=lo, max=hi, std=float(column.std()), resolution=resolution,
                        constant=hi == lo, at_bounds_fraction=at_bounds, window_std=window_std,
                        flat_fraction=flat_fraction)
