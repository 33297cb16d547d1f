"""``run.json["detection"]``: what the device needs to turn scores and samples into events.

Written by the trainer next to the model, copied verbatim into the bundle
manifest by the converter, parsed on the device by
:class:`edge_agent.detection.settings.DetectionSettings` (plus
``feature_stats`` for the sensor-health checks). Everything here is derived
from the window, hop, sample rate and the normal training rows: no labels.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edge_agent.detection.settings import DetectionSettings, FalseAlarmInfo
from edge_agent.detection.stats import measure_feature_stats


def detection_section(train_rows: np.ndarray, features: list[str], window: int, hop: int,
                      rate_hz: float | None, *, skill_ratio: float | None = None,
                      false_alarm: dict[str, Any] | None = None) -> dict[str, Any]:
    """The recommended policy, dynamic threshold and sensor-health settings, with the training stats."""
    settings = DetectionSettings.default_for(window, hop, rate_hz)
    info = FalseAlarmInfo.from_dict(false_alarm) if false_alarm else None
    settings = DetectionSettings(policy=settings.policy, dynamic_threshold=settings.dynamic_threshold,
                                 sensor_health=settings.sensor_health,
                                 skill_ratio=None if skill_ratio is None else float(skill_ratio),
                                 false_alarm=info)
    stats = measure_feature_stats(np.asarray(train_rows, dtype=np.float64), features, settings.sensor_health)
    return {**settings.to_dict(), "feature_stats": [s.to_dict() for s in stats]}
