"""Feature scaling with parameters that are plain numbers (JSON, no pickle).

``scaled = (x - offset) / scale``, per feature. ``minmax`` maps the training
range to [0, 1]; ``standard`` maps to zero mean and unit variance. A feature
that is constant in the training rows gets scale 1 so it cannot blow up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

SCALER_KINDS = ("minmax", "standard", "none")


@dataclass
class Scaler:
    kind: str = "minmax"
    offset: list[float] = field(default_factory=list)
    scale: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.kind not in SCALER_KINDS:
            raise ValueError(f"unknown scaler {self.kind!r}; use one of {', '.join(SCALER_KINDS)}")

    @classmethod
    def fit(cls, train_rows: np.ndarray, kind: str = "minmax") -> "Scaler":
        """Fit on training rows only; never on validation or test rows."""
        x = np.asarray(train_rows, dtype=np.float64)
        if x.ndim == 1:
            x = x[:, None]
        if kind == "minmax":
            offset = x.min(axis=0)
            scale = x.max(axis=0) - offset
        elif kind == "standard":
            offset = x.mean(axis=0)
            scale = x.std(axis=0)
        elif kind == "none":
            offset = np.zeros(x.shape[1])
            scale = np.ones(x.shape[1])
        else:
            raise ValueError(f"unknown scaler {kind!r}; use one of {', '.join(SCALER_KINDS)}")
        scale = np.where(scale > 1e-12, scale, 1.0)
        return cls(kind=kind, offset=[float(v) for v in offset], scale=[float(v) for v in scale])

    @property
    def n_features(self) -> int:
        return len(self.offset)

    def _arrays(self) -> tuple[np.ndarray, np.ndarray]:
        # Cached float32 copies: the agent calls transform once per sample/window.
        cache = getattr(self, "_cache", None)
        if cache is None:
            cache = (np.asarray(self.offset, np.float32), np.asarray(self.scale, np.float32))
            object.__setattr__(self, "_cache", cache)
        return cache

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Scale rows or windows (last axis = features); returns float32."""
        offset, scale = self._arrays()
        return (np.asarray(x, dtype=np.float32) - offset) / scale

    def inverse_transform(self, x: np.ndarray) -> np.ndarray:
        offset, scale = self._arrays()
        return np.asarray(x, dtype=np.float32) * scale + offset

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "offset": list(self.offset), "scale": list(self.scale)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Scaler":
        offset = [float(v) for v in d["offset"]]
        scale = [float(v) for v in d["scale"]]
        if len(offset) != len(scale):
            raise ValueError("scaler offset and scale differ in length")
        if any(not np.isfinite(s) or s == 0 for s in scale):
            raise ValueError("scaler scale must be finite and non-zero")
        return cls(kind=str(d.get("kind", "minmax")), offset=offset, scale=scale)
