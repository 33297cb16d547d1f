"""Feature scaling with parameters that are plain numbers (JSON, no pickle).

``scaled = (x - offset) / scale``, per feature. ``minmax`` maps the training
range to [0, 1]; ``standard`` maps to zero mean and unit variance; ``robust``
subtracts the median and divides by the interquartile range (a few spikes in
the training rows do not stretch it).

A constant feature gets its *resolution floor* as scale: the smallest nonzero
step between its sorted unique training values, or for a feature with one
value the stated tolerance ``max(1e-3 * |value|, 1e-3)``. A departure from the
constant by one step is then an error of 1 in scaled units, far above the
reconstruction error of the other features: for a status-like channel the
departure *is* the anomaly. No scale is ever below the floor, so a near-constant
feature cannot blow up either.

Optional clipping (``clip`` = margin): scaled values are clipped to the scaled
training range widened by ``margin`` times its width (at least 1 scaled unit)
on each side. A reading far outside anything seen in training then still scores
high but cannot reach 1e6-sized scores that keep a smoothed score above the
threshold long after the reading returned. The device and the trainer clip in
the same :meth:`Scaler.transform`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

SCALER_KINDS = ("minmax", "standard", "robust", "none")
CONSTANT_REL_TOLERANCE = 1e-3
CONSTANT_ABS_TOLERANCE = 1e-3


def resolution_floor(column: np.ndarray) -> float:
    """Smallest nonzero step between sorted unique values; the tolerance for a constant."""
    values = np.unique(np.asarray(column, dtype=np.float64))
    values = values[np.isfinite(values)]
    if values.size == 0:
        return CONSTANT_ABS_TOLERANCE
    steps = np.diff(values)
    steps = steps[steps > 0]
    if steps.size:
        return float(steps.min())
    return float(max(CONSTANT_REL_TOLERANCE * abs(float(values[0])), CONSTANT_ABS_TOLERANCE))


@dataclass
class Scaler:
    kind: str = "minmax"
    offset: list[float] = field(default_factory=list)
    scale: list[float] = field(default_factory=list)
    clip_low: list[float] | None = None
    clip_high: list[float] | None = None

    def __post_init__(self) -> None:
        if self.kind not in SCALER_KINDS:
            raise ValueError(f"unknown scaler {self.kind!r}; use one of {', '.join(SCALER_KINDS)}")

    @classmethod
    def fit(cls, train_rows: np.ndarray, kind: str = "minmax", clip: float | None = None) -> Scaler:
        """Fit on training rows only; never on validation or test rows."""
        x = np.asarray(train_rows, dtype=np.float64)
        if x.ndim == 1:
            x = x[:, None]
        offset, spread = _offset_and_spread(x, kind)
        floors = np.array([resolution_floor(x[:, j]) for j in range(x.shape[1])])
        scale = spread if kind == "none" else np.maximum(spread, floors)
        scaler = cls(kind=kind, offset=[float(v) for v in offset], scale=[float(v) for v in scale])
        if clip is not None:
            scaler = scaler.with_clip(x, clip)
        return scaler

    def with_clip(self, train_rows: np.ndarray, margin: float) -> Scaler:
        """Copy that clips scaled values ``margin`` widths beyond the scaled training range."""
        if not (np.isfinite(margin) and margin >= 0):
            raise ValueError(f"clip margin must be a non-negative number, got {margin}")
        scaled = (np.asarray(train_rows, np.float64) - np.asarray(self.offset)) / np.asarray(self.scale)
        lo, hi = scaled.min(axis=0), scaled.max(axis=0)
        width = np.maximum(hi - lo, 1.0)
        return Scaler(self.kind, list(self.offset), list(self.scale),
                      [float(v) for v in lo - margin * width], [float(v) for v in hi + margin * width])

    @property
    def n_features(self) -> int:
        return len(self.offset)

    @property
    def clips(self) -> bool:
        return self.clip_low is not None and self.clip_high is not None

    def _arrays(self) -> tuple[np.ndarray, np.ndarray]:
        # Cached float32 copies: the agent calls transform once per sample/window.
        cache = getattr(self, "_cache", None)
        if cache is None:
            cache = (np.asarray(self.offset, np.float32), np.asarray(self.scale, np.float32))
            object.__setattr__(self, "_cache", cache)
        return cache

    def _clip_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        cache = getattr(self, "_clip_cache", None)
        if cache is None:
            cache = (np.asarray(self.clip_low, np.float32), np.asarray(self.clip_high, np.float32))
            object.__setattr__(self, "_clip_cache", cache)
        return cache

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Scale (and clip, when set) rows or windows (last axis = features); returns float32."""
        offset, scale = self._arrays()
        scaled: np.ndarray = (np.asarray(x, dtype=np.float32) - offset) / scale
        if self.clips:
            low, high = self._clip_arrays()
            np.clip(scaled, low, high, out=scaled)
        return scaled

    def inverse_transform(self, x: np.ndarray) -> np.ndarray:
        offset, scale = self._arrays()
        restored: np.ndarray = np.asarray(x, dtype=np.float32) * scale + offset
        return restored

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "offset": list(self.offset), "scale": list(self.scale)}
        if self.clips:
            out["clip_low"], out["clip_high"] = list(self.clip_low or []), list(self.clip_high or [])
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Scaler:
        offset = [float(v) for v in d["offset"]]
        scale = [float(v) for v in d["scale"]]
        if len(offset) != len(scale):
            raise ValueError("scaler offset and scale differ in length")
        if any(not np.isfinite(s) or s == 0 for s in scale):
            raise ValueError("scaler scale must be finite and non-zero")
        low, high = d.get("clip_low"), d.get("clip_high")
        if (low is None) != (high is None):
            raise ValueError("scaler clip_low and clip_high must be given together")
        if low is not None and high is not None:
            low, high = [float(v) for v in low], [float(v) for v in high]
            if len(low) != len(offset) or len(high) != len(offset) or any(a > b for a, b in zip(low, high)):
                raise ValueError("scaler clip bounds must be one low <= high pair per feature")
        return cls(kind=str(d.get("kind", "minmax")), offset=offset, scale=scale, clip_low=low, clip_high=high)


def _offset_and_spread(x: np.ndarray, kind: str) -> tuple[np.ndarray, np.ndarray]:
    if kind == "minmax":
        return x.min(axis=0), x.max(axis=0) - x.min(axis=0)
    if kind == "standard":
        return x.mean(axis=0), x.std(axis=0)
    if kind == "robust":
        q25, q50, q75 = np.percentile(x, [25, 50, 75], axis=0)
        return q50, q75 - q25
    if kind == "none":
        return np.zeros(x.shape[1]), np.ones(x.shape[1])
    raise ValueError(f"unknown scaler {kind!r}; use one of {', '.join(SCALER_KINDS)}")
