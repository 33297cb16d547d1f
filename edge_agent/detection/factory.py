"""Build the run-time detectors from a bundle's detection settings (what the pipeline wires in).

The manifest states the dynamic threshold's buffer in seconds when the rate is
known; these helpers turn it into windows for the device's hop and rate, and
leave a detector out (None) when its settings disable it or its inputs are
missing (an older bundle without training statistics has no sensor checks).
"""

from __future__ import annotations

from collections.abc import Sequence

from edge_agent.detection.dynamic_threshold import DynamicThreshold
from edge_agent.detection.sensor_faults import SensorHealthMonitor
from edge_agent.detection.settings import DetectionSettings
from edge_agent.detection.stats import FeatureStats


def dynamic_threshold_for(settings: DetectionSettings, static_floor: float, hop: int,
                          rate_hz: float | None) -> DynamicThreshold | None:
    """The causal dynamic threshold above ``static_floor`` (the bundle threshold times sensitivity)."""
    params = settings.dynamic_threshold
    if not params.enabled:
        return None
    return DynamicThreshold(params.resolved(hop, rate_hz), static_floor)


def sensor_health_for(settings: DetectionSettings,
                      feature_stats: Sequence[FeatureStats] | None) -> SensorHealthMonitor | None:
    """The sensor-health monitor, or None when disabled or the bundle carries no training statistics."""
    if not settings.sensor_health.enabled or not feature_stats:
        return None
    return SensorHealthMonitor(settings.sensor_health, feature_stats)
