"""The threshold decision of the pipeline: the bundle's static threshold, or the dynamic one above it.

A decider turns one smoothed window score into ``(anomalous, threshold in
force)``. The static threshold (times ``sensitivity``) is always the floor, so
a quiet stretch cannot make the device hypersensitive.
"""

from __future__ import annotations

from typing import Any, Protocol

from edge_agent.bundle import Bundle
from edge_agent.detection.factory import dynamic_threshold_for
from edge_agent.detection.factory import sensor_health_for as monitor_for
from edge_agent.detection.settings import DetectionSettings
from edge_agent.detection.stats import feature_stats_from_json
from edge_agent.errors import VigilInputError
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


def detection_settings(bundle: Bundle) -> tuple[DetectionSettings | None, Any]:
    """The manifest's ``detection`` section parsed (None for a bundle without one) and its feature stats."""
    raw = bundle.detection
    if raw is None:
        return None, None
    raw = dict(raw)
    stats = raw.pop("feature_stats", None)
    try:
        settings = DetectionSettings.from_dict(raw)
        features = feature_stats_from_json(stats, bundle.features) if stats is not None else None
    except VigilInputError as exc:
        raise VigilInputError(exc.detail, file=bundle.path, key=exc.key) from None
    return settings, features


def make_threshold(bundle: Bundle, settings: PipelineSettings, rate_hz: float | None = None) -> ThresholdDecider:
    """The bundle's dynamic threshold above its static floor when it ships one and the config allows it.

    A bundle without a ``detection`` section (made before it existed) keeps
    the static threshold it was validated with.
    """
    floor = bundle.threshold * settings.policy.sensitivity
    detection, _ = detection_settings(bundle)
    if detection is None or not settings.dynamic_threshold:
        return StaticThreshold(floor)
    dynamic = dynamic_threshold_for(detection, floor, bundle.spec.hop, rate_hz or bundle.sampling_rate_hz)
    return StaticThreshold(floor) if dynamic is None else dynamic


def sensor_health_for(bundle: Bundle, rate_hz: float | None) -> Any:
    """The bundle's sensor-health monitor (None without training statistics or when disabled)."""
    detection, features = detection_settings(bundle)
    if detection is None:
        return None
    return monitor_for(detection, features)
