"""Device-side detection beyond the model's score: thresholds, alert policy, sensor health.

One algorithm per module, each a small streaming object (``update`` / ``reset``
/ ``state``), numpy only:

- :mod:`.dynamic_threshold`: causal Telemanom threshold over recent smoothed errors.
- :mod:`.sensor_faults`: flatline, clipping, out-of-range and dropout faults on raw samples.
- :mod:`.policy`: default alert policy and detection settings from window, hop and rate.
- :mod:`.settings`: the typed, validated ``manifest["detection"]``.
- :mod:`.stats`: per-feature training statistics the sensor checks compare with.
- :mod:`.factory`: the detectors for a bundle's settings, hop and rate.
"""

from edge_agent.detection.dynamic_threshold import Decision, DynamicThreshold
from edge_agent.detection.factory import dynamic_threshold_for, sensor_health_for
from edge_agent.detection.fault_events import SensorFault, SensorFaultEvent
from edge_agent.detection.policy import recommended_policy
from edge_agent.detection.sensor_faults import SensorHealthMonitor
from edge_agent.detection.settings import (
    AlertPolicySettings,
    DetectionSettings,
    DynamicThresholdSettings,
    FalseAlarmInfo,
    ScoreSettings,
    SensorHealthSettings,
)
from edge_agent.detection.stats import FeatureStats, feature_stats_from_json, measure_feature_stats

__all__ = [
    "AlertPolicySettings",
    "Decision",
    "DetectionSettings",
    "DynamicThreshold",
    "DynamicThresholdSettings",
    "FalseAlarmInfo",
    "FeatureStats",
    "SensorFault",
    "SensorFaultEvent",
    "SensorHealthMonitor",
    "ScoreSettings",
    "SensorHealthSettings",
    "dynamic_threshold_for",
    "feature_stats_from_json",
    "measure_feature_stats",
    "recommended_policy",
    "sensor_health_for",
]
