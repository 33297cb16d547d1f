"""``run.json["detection"]``: what the device needs to turn scores and samples into events.

Written by the trainer next to the model, copied verbatim into the bundle
manifest by the converter, parsed on the device by
:class:`edge_agent.detection.settings.DetectionSettings` (plus
``feature_stats`` for the sensor-health checks). Everything here is derived
from the window, hop, sample rate and the normal training rows: no labels.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from edge_agent.detection.policy import default_detection, recommended_policy
from edge_agent.detection.settings import DetectionSettings, FalseAlarmInfo
from edge_agent.detection.stats import measure_feature_stats


def device_smoothing(requested: float | None, window: int, hop: int, rate_hz: float | None) -> float | None:
    """The EWMA alpha the device applies: ``--smoothing`` when given, else the recommended policy's."""
    if requested is not None:
        return requested
    return recommended_policy(window, hop, rate_hz).smoothing


def detection_section(train_rows: np.ndarray, features: list[str], window: int, hop: int,
                      rate_hz: float | None, *, skill_ratio: float | None = None,
                      false_alarm: dict[str, Any] | None = None,
                      smoothing: float | None = None) -> dict[str, Any]:
    """The recommended policy, dynamic threshold and sensor-health settings, with the training stats.

    ``smoothing``: the alpha the static threshold was calibrated with (it must be the device's).
    """
    settings = default_detection(window, hop, rate_hz)
    policy = replace(settings.policy, smoothing=smoothing) if smoothing is not None else settings.policy
    info = FalseAlarmInfo.from_dict(false_alarm) if false_alarm else None
    settings = DetectionSettings(policy=policy, dynamic_threshold=settings.dynamic_threshold,
                                 sensor_health=settings.sensor_health, score=settings.score,
                                 skill_ratio=None if skill_ratio is None else float(skill_ratio),
                                 false_alarm=info)
    stats = measure_feature_stats(np.asarray(train_rows, dtype=np.float64), features, settings.sensor_health)
    return {**settings.to_dict(), "feature_stats": [s.to_dict() for s in stats]}
