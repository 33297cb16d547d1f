"""manifest["detection"]: JSON round trip and one-line errors naming detection.<section>.<key>."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from edge_agent.detection.policy import default_detection
from edge_agent.detection.settings import (
    AlertPolicySettings,
    DetectionSettings,
    DynamicThresholdSettings,
    FalseAlarmInfo,
    SensorHealthSettings,
)
from edge_agent.errors import VigilInputError


def test_defaults_round_trip_through_json() -> None:
    settings = default_detection(128, 16, 100.0)
    settings = DetectionSettings(settings.policy, settings.dynamic_threshold, settings.sensor_health,
                                 skill_ratio=0.42, false_alarm=FalseAlarmInfo(1.0, "day", 0.8, "pot"))
    text = json.dumps(settings.to_dict(), allow_nan=False)
    assert DetectionSettings.from_dict(json.loads(text)) == settings
    data = json.loads(text)
    assert data["policy"]["k"] == 4 and data["dynamic_threshold"]["buffer_seconds"] == pytest.approx(320.0)
    assert data["false_alarm"] == {"target": 1.0, "unit": "day", "expected": 0.8, "method": "pot"}


def test_full_scale_round_trips_as_a_list() -> None:
    health = SensorHealthSettings(full_scale=(-2, 2))
    assert health.full_scale == (-2.0, 2.0) and health.to_dict()["full_scale"] == [-2.0, 2.0]
    assert SensorHealthSettings.from_dict(json.loads(json.dumps(health.to_dict()))) == health


def test_an_older_bundle_without_detection_gets_todays_behaviour() -> None:
    settings = DetectionSettings.from_dict(None)
    assert (settings.policy.k, settings.policy.n, settings.policy.m, settings.policy.smoothing) == (1, 1, 1, None)
    assert DetectionSettings.from_dict({}) == settings
    partial = DetectionSettings.from_dict({"policy": {"k": 2, "n": 3}})
    assert (partial.policy.k, partial.policy.n, partial.policy.m) == (2, 3, 1)


def test_integral_floats_are_integers() -> None:
    assert AlertPolicySettings.from_dict({"k": 2.0, "n": 3}).k == 2


BAD: list[tuple[Any, str, str]] = [
    ([1, 2], "detection", "JSON object"),
    ({"bogus": 1}, "detection.bogus", "unknown key"),
    ({"version": 2}, "detection.version", "<= 1"),
    ({"skill_ratio": "low"}, "detection.skill_ratio", "number"),
    ({"skill_ratio": math.nan}, "detection.skill_ratio", "finite"),
    ({"policy": {"k": 3, "n": 2}}, "detection.policy.k", "<= 2"),
    ({"policy": {"m": True}}, "detection.policy.m", "integer"),
    ({"policy": {"m": 1.5}}, "detection.policy.m", "integer"),
    ({"policy": {"smoothing": 0}}, "detection.policy.smoothing", "> 0"),
    ({"policy": {"smoothing": 1.5}}, "detection.policy.smoothing", "<= 1"),
    ({"policy": "fast"}, "detection.policy", "JSON object"),
    ({"policy": {"x": 1}}, "detection.policy.x", "unknown key"),
    ({"dynamic_threshold": {"z_max": "10"}}, "detection.dynamic_threshold.z_max", "number"),
    ({"dynamic_threshold": {"z_max": math.inf}}, "detection.dynamic_threshold.z_max", "finite"),
    ({"dynamic_threshold": {"z_max": 1.0}}, "detection.dynamic_threshold.z_max", "> 2"),
    ({"dynamic_threshold": {"buffer_windows": 10 ** 9}}, "detection.dynamic_threshold.buffer_windows", "<="),
    ({"dynamic_threshold": {"min_windows": 3000}}, "detection.dynamic_threshold.min_windows", "<= 2000"),
    ({"dynamic_threshold": {"prune_fraction": 1.0}}, "detection.dynamic_threshold.prune_fraction", "< 1"),
    ({"dynamic_threshold": {"buffer_seconds": -5}}, "detection.dynamic_threshold.buffer_seconds", "> 0"),
    ({"dynamic_threshold": {"enabled": "yes"}}, "detection.dynamic_threshold.enabled", "true or false"),
    ({"sensor_health": {"full_scale": [2, -2]}}, "detection.sensor_health.full_scale", "lo < hi"),
    ({"sensor_health": {"full_scale": [0, math.nan]}}, "detection.sensor_health.full_scale[1]", "finite"),
    ({"sensor_health": {"check_samples": 1}}, "detection.sensor_health.check_samples", ">= 2"),
    ({"sensor_health": {"clip_fraction": 0}}, "detection.sensor_health.clip_fraction", "> 0"),
    ({"false_alarm": {"unit": "day"}}, "detection.false_alarm.target", "required"),
    ({"false_alarm": {"target": 1, "unit": "fortnight"}}, "detection.false_alarm.unit", "one of"),
    ({"false_alarm": {"target": 0}}, "detection.false_alarm.target", "> 0"),
]


@pytest.mark.parametrize(("obj", "key", "words"), BAD, ids=[b[1] + ":" + b[2] for b in BAD])
def test_bad_values_are_one_line_errors_naming_the_key(obj: Any, key: str, words: str) -> None:
    with pytest.raises(VigilInputError) as info:
        DetectionSettings.from_dict(obj)
    assert info.value.key == key, str(info.value)
    assert words in str(info.value) and "\n" not in str(info.value)
    assert info.value.exit_code == 2


def test_settings_built_in_code_obey_the_same_rules() -> None:
    with pytest.raises(VigilInputError, match="detection.dynamic_threshold.refit_every"):
        DynamicThresholdSettings(refit_every=0)
    with pytest.raises(VigilInputError, match="detection.policy"):
        DetectionSettings(policy={"k": 1})  # type: ignore[arg-type]
