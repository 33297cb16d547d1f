"""Default alert policy and detection defaults from window, hop and rate, by hand."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from edge_agent.alerts import AlertPolicy
from edge_agent.detection import (
    dynamic_threshold_for,
    measure_feature_stats,
    policy,
    sensor_health_for,
)
from edge_agent.detection.policy import (
    default_detection,
    recommended_dynamic_threshold,
    recommended_policy,
    recommended_sensor_health,
)


def test_window_128_hop_16_without_rate() -> None:
    # One window length = 128 / 16 = 8 windows: n = 8, k = 4, m = 16, cooldown = 8;
    # smoothing span 0.5 * 8 = 4 windows -> alpha = 2 / (4 + 1) = 0.4.
    rec = recommended_policy(128, 16)
    assert (rec.k, rec.n, rec.m, rec.cooldown) == (4, 8, 16, 8)
    assert rec.smoothing == pytest.approx(0.4) and rec.hop_seconds is None and rec.seconds() is None


def test_with_a_rate_the_policy_is_stated_in_seconds() -> None:
    # 100 Hz: a hop is 0.16 s; m = 16 windows = 2.56 s is above the 1 s minimum.
    rec = recommended_policy(128, 16, 100.0)
    assert (rec.k, rec.n, rec.m, rec.cooldown) == (4, 8, 16, 8)
    assert rec.seconds() == pytest.approx({"n": 1.28, "m": 2.56, "cooldown": 1.28})


def test_counts_are_bounded_for_a_hop_of_one() -> None:
    # 128 windows per window length: n capped at 64 (k = 32), m = 256, cooldown = 128, span 64 -> 2/65.
    rec = recommended_policy(128, 1)
    assert (rec.k, rec.n, rec.m, rec.cooldown) == (32, policy.N_MAX, 256, 128)
    assert rec.smoothing == pytest.approx(2 / 65)


def test_fast_stream_closes_after_at_least_a_second_within_the_cap() -> None:
    # 1 kHz, window 32, hop 1: two window lengths = 64 windows = 64 ms < 1 s -> 1000 windows, capped at 512.
    assert recommended_policy(32, 1, 1000.0).m == policy.M_MAX
    # 10 Hz, window 8, hop 4: m = 4 windows = 1.6 s, already over a second.
    assert recommended_policy(8, 4, 10.0).m == 4


def test_hop_equal_to_window_means_no_smoothing_and_single_windows() -> None:
    rec = recommended_policy(16, 16)
    assert (rec.k, rec.n, rec.m, rec.cooldown, rec.smoothing) == (1, 1, 2, 1, None)


def test_the_recommendation_is_a_valid_alert_policy() -> None:
    for window, hop, rate in [(128, 16, 100.0), (128, 1, None), (64, 8, 0.0033), (3, 2, None)]:
        rec = recommended_policy(window, hop, rate)
        AlertPolicy(1.0, rec.k, rec.n, rec.m, rec.cooldown)  # raises if k > n, m < 1, ...
        assert rec.smoothing is None or 0 < rec.smoothing <= 1


def test_dynamic_threshold_and_sensor_health_defaults() -> None:
    dyn = recommended_dynamic_threshold(128, 16, 100.0)
    assert dyn.buffer_windows == policy.BUFFER_WINDOWS and dyn.min_windows == 500
    assert dyn.buffer_seconds == pytest.approx(2000 * 16 / 100.0)
    assert dyn.resolved(16, 100.0).buffer_windows == 2000
    assert recommended_dynamic_threshold(128, 16).buffer_seconds is None
    health = recommended_sensor_health(128, 16, 100.0)
    assert (health.check_samples, health.hold_samples, health.dropout_min_missing) == (128, 256, 16)
    assert recommended_sensor_health(4, 1).check_samples == policy.MIN_CHECK_SAMPLES
    # 250 Hz, window 64: two window lengths are 128 samples, less than 2 s = 500 samples.
    assert recommended_sensor_health(64, 4, 250.0).hold_samples == 500


@pytest.mark.parametrize("args", [(0, 1, None), (16, 0, None), (16, 4, -1.0), (16, 4, float("nan"))])
def test_bad_geometry_is_refused(args: tuple[int, int, float | None]) -> None:
    with pytest.raises(ValueError):
        recommended_policy(*args)


def test_factory_builds_the_detectors_a_bundle_asks_for() -> None:
    settings = default_detection(128, 16, 100.0)
    threshold = dynamic_threshold_for(settings, 0.5, hop=16, rate_hz=100.0)
    assert threshold is not None and threshold.params.buffer_windows == 2000 and threshold.floor == 0.5
    # The same buffer in seconds on a device hopping twice as far holds half the windows.
    other = dynamic_threshold_for(settings, 0.5, hop=32, rate_hz=100.0)
    assert other is not None and other.params.buffer_windows == 1000
    off = replace(settings, dynamic_threshold=replace(settings.dynamic_threshold, enabled=False))
    assert dynamic_threshold_for(off, 0.5, 16, 100.0) is None
    stats = measure_feature_stats(np.random.default_rng(0).normal(size=(1000, 2)), ["a", "b"], settings.sensor_health)
    monitor = sensor_health_for(settings, stats)
    assert monitor is not None and monitor.features == ["a", "b"]
    assert sensor_health_for(settings, None) is None
