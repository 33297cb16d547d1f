"""The threshold decision of the pipeline: the bundle's static threshold, or the dynamic one above it.

A decider turns one smoothed window score into ``(anomalous, threshold in
force)``. The static threshold (times ``sensitivity``) is always the floor, so
a quiet stretch cannot make the device hypersensitive.
"""

from __future__ import annotations

from typing import Any, Protocol

from edge_agent.bundle import Bundle
from edge_agent.pipeline.settings import PipelineSettings


class ThresholdDecider(Protocol):
    def decide(self, score: float) -> tuple[bool, float]: ...

    def reset(self) -> None: ...

    def state(self) -> dict[str, Any]: ...


class StaticThreshold:
    """``score > limit``, nothing learned at run time."""

    kind = "static"

    def __init__(self, limit: float) -> None:
        self.limit = float(limit)

    def decide(self, score: float) -> tuple[bool, float]:
        return bool(score > self.limit), self.limit

    def reset(self) -> None:
        return None

    def state(self) -> dict[str, Any]:
        return {"kind": self.kind, "value": self.limit}


def make_threshold(bundle: Bundle, settings: PipelineSettings) -> ThresholdDecider:
    limit = bundle.threshold * settings.policy.sensitivity
    return StaticThreshold(limit)


def sensor_health_for(bundle: Bundle, rate_hz: float | None) -> Any:
    return None
