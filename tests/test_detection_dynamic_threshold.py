"""Causal Telemanom threshold: the criterion by hand, pruning, floor, warm-up, adaptation, memory."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edge_agent.detection.dynamic_threshold import Decision, DynamicThreshold, best_epsilon
from edge_agent.detection.settings import DynamicThresholdSettings


def grid(params: DynamicThresholdSettings) -> np.ndarray:
    return np.arange(params.z_min, params.z_max + params.z_step / 2, params.z_step)


def reference_epsilon(errors: list[float], params: DynamicThresholdSettings) -> float:
    """The paper's formula, written as plainly as possible (loops, no tricks)."""
    mean, std = float(np.mean(errors)), float(np.std(errors))
    best_z, best_score = params.z_max, 0.0
    for z in grid(params):
        eps = mean + z * std
        below = [e for e in errors if e <= eps]
        above = [i for i, e in enumerate(errors) if e > eps]
        runs = sum(1 for i in above if i == 0 or errors[i - 1] <= eps)
        if not above or not below or runs > params.max_sequences \
                or len(above) >= params.max_anomalous_fraction * len(errors):
            continue
        score = ((mean - np.mean(below)) / mean + (std - np.std(below)) / std) / (len(above) + runs ** 2)
        if score >= best_score:
            best_z, best_score = z, score
    return mean + best_z * std


def test_criterion_by_hand_two_spikes() -> None:
    # 18 x 1.0 then 11, 11: mean 2, std 3. Every z in {1, 1.5, 2, 2.5} flags exactly the two 11s
    # (one run): score (1/2 + 3/3) / (2 + 1) = 0.5 for all; ties go to the largest z: eps = 2 + 2.5*3.
    params = DynamicThresholdSettings(z_min=1.0, z_max=2.5, z_step=0.5, min_windows=2, buffer_windows=20)
    errors = np.array([1.0] * 18 + [11.0, 11.0])
    assert best_epsilon(errors, grid(params), params) == pytest.approx(9.5)


def test_criterion_by_hand_keeps_the_minor_bump_below() -> None:
    # 16 x 1, then 5, 5, then 11, 11 (mean 2.4, std 3.1048).
    # z = 0.5 (eps 3.95) removes 4 points: (1.4/2.4 + 1) / (4 + 1) = 0.317;
    # z >= 1 (eps 5.5 .. 8.6) removes the 11s only: (0.956/2.4 + 1.848/3.105) / (2 + 1) = 0.331: wins,
    # and of the tied z the largest, 2.0.
    params = DynamicThresholdSettings(z_min=0.5, z_max=2.0, z_step=0.5, min_windows=2, buffer_windows=20)
    errors = np.array([1.0] * 16 + [5.0, 5.0, 11.0, 11.0])
    eps = best_epsilon(errors, grid(params), params)
    assert eps == pytest.approx(errors.mean() + 2.0 * errors.std())
    assert 5.0 < eps < 11.0


def test_criterion_matches_a_plain_reference_on_random_buffers() -> None:
    rng = np.random.default_rng(7)
    params = DynamicThresholdSettings(min_windows=2, buffer_windows=400, z_min=1.0, z_max=6.0)
    for trial in range(40):
        errors = np.abs(rng.normal(1.0, 0.2, int(rng.integers(20, 400))))
        spikes = rng.integers(0, errors.size, int(rng.integers(0, 6)))
        errors[spikes] += rng.uniform(0.5, 3.0, spikes.size)
        eps = best_epsilon(errors, grid(params), params)
        assert eps == pytest.approx(reference_epsilon(errors.tolist(), params), rel=1e-9), trial


def test_ring_order_counts_runs_across_the_seam() -> None:
    # The same time series stored as a rotated ring gives the same threshold.
    params = DynamicThresholdSettings(min_windows=2, buffer_windows=40, z_min=1.0, z_max=4.0, max_sequences=1)
    series = np.array([1.0] * 30 + [4.0, 4.0] + [1.0] * 6 + [4.5, 4.5])
    ring = np.roll(series, 7)  # oldest element now at index 7
    assert best_epsilon(ring, grid(params), params, oldest=7) == pytest.approx(
        best_epsilon(series, grid(params), params))


def settings(**kw: float) -> DynamicThresholdSettings:
    base: dict[str, float] = {"buffer_windows": 200, "min_windows": 100, "refit_every": 10}
    base.update(kw)
    return DynamicThresholdSettings(**base)  # type: ignore[arg-type]


def test_warm_up_uses_only_the_floor() -> None:
    dt = DynamicThreshold(settings(), static_floor=2.0)
    for i in range(99):
        decision = dt.update(1.0 if i != 50 else 2.5)
        assert decision == Decision(i == 50, 2.0)
        assert dt.warming_up and dt.state()["warming_up"]
    dt.update(1.0)
    assert not dt.warming_up and dt.state()["buffer_fill"] == 100


def test_floor_keeps_a_quiet_buffer_from_becoming_hypersensitive() -> None:
    rng = np.random.default_rng(0)
    dt = DynamicThreshold(settings(), static_floor=1.0)
    for e in np.abs(rng.normal(0.01, 0.001, 300)):
        dt.update(e)
    # 50x the normal level, far above the buffer's own mean + 10 std, but below the trained floor.
    assert dt.update(0.5) == Decision(False, 1.0)
    assert dt.update(1.5).anomalous
    assert dt.threshold >= 1.0


def test_step_change_stops_alarming_once_the_buffer_adapts_and_a_spike_still_alarms() -> None:
    rng = np.random.default_rng(1)
    dt = DynamicThreshold(DynamicThresholdSettings(buffer_windows=400, min_windows=100, refit_every=10), 1.2)
    errors = np.concatenate([rng.normal(1.0, 0.05, 600), rng.normal(2.0, 0.05, 1200)])
    errors[1500] += 1.5
    flags = np.array([dt.update(e).anomalous for e in errors])
    assert not flags[:600].any()  # normal level: never above the floor
    assert flags[600:620].all()  # the step alarms at once ...
    assert not flags[600 + 400:1500].any()  # ... and not after one buffer length of the new level
    assert flags[1500]  # a spike on the new level still alarms
    assert not flags[1501:].any()


def prune_setup(prune_fraction: float) -> DynamicThreshold:
    # 99 x 0.5 and one 1.0: epsilon <= mean + 10 std = 1.0025 < floor 1.05, so the floor rules and the
    # largest normal error is 1.0. refit_every = buffer: no refit while the test feeds its candidates.
    dt = DynamicThreshold(settings(refit_every=200, prune_fraction=prune_fraction), static_floor=1.05)
    for e in [1.0] + [0.5] * 99:
        dt.update(e)
    assert dt.threshold == pytest.approx(1.05) and dt.state()["epsilon"] < 1.05
    return dt


def test_pruning_a_minor_peak_is_normal_until_the_run_clearly_exceeds_the_normal_max() -> None:
    dt = prune_setup(0.13)
    assert not dt.update(1.1).anomalous  # (1.1 - 1.0) / 1.1 = 0.09 < 0.13: a minor peak
    assert dt.update(1.2).anomalous  # same run, peak 1.2: (1.2 - 1.0) / 1.2 = 0.17 >= 0.13
    assert dt.update(1.1).anomalous  # the run is confirmed: its rest is anomalous too
    assert not dt.update(0.5).anomalous  # the run ends
    assert not dt.update(1.1).anomalous  # a new run starts unconfirmed


def test_without_pruning_every_error_above_the_threshold_is_anomalous() -> None:
    dt = prune_setup(0.0)
    assert dt.update(1.1).anomalous


def test_threshold_never_below_floor_and_memory_is_bounded() -> None:
    rng = np.random.default_rng(3)
    params = settings(buffer_windows=150, min_windows=50, refit_every=7)
    dt = DynamicThreshold(params, static_floor=0.3)
    for e in np.abs(rng.standard_cauchy(3000)) * 0.1:
        assert dt.update(e).threshold >= 0.3
    assert dt.state()["buffer_fill"] == 150 and dt._buffer.nbytes == 150 * 8
    assert dt.refits == 1 + (3000 - 50) // 7  # first fit when warm-up ends, then every 7 windows


def test_non_finite_errors_never_enter_the_buffer() -> None:
    dt = DynamicThreshold(settings(), static_floor=1.0)
    dt.update(0.5)
    assert dt.update(math.nan) == Decision(False, 1.0)
    assert dt.update(math.inf) == Decision(True, 1.0)
    assert dt.state()["buffer_fill"] == 1


def test_reset_starts_a_fresh_buffer_and_says_so() -> None:
    dt = DynamicThreshold(settings(), static_floor=1.0)
    for _ in range(150):
        dt.update(0.5)
    assert not dt.state()["warming_up"]
    dt.reset()
    state = dt.state()
    assert state["warming_up"] and state["buffer_fill"] == 0 and state["value"] == 1.0 and state["epsilon"] is None


def test_decide_is_update_as_a_tuple() -> None:
    dt = DynamicThreshold(settings(), static_floor=1.0)
    assert dt.decide(2.0) == (True, 1.0)


def test_buffer_seconds_become_windows_for_the_hop_and_rate() -> None:
    params = DynamicThresholdSettings(buffer_seconds=60.0, min_windows=500, refit_every=64)
    resolved = params.resolved(hop=16, rate_hz=100.0)
    assert resolved.buffer_windows == 375 and resolved.min_windows == 375 and resolved.refit_every == 64
    assert params.resolved(hop=16, rate_hz=None) is params


def test_bad_floor_is_refused() -> None:
    with pytest.raises(ValueError):
        DynamicThreshold(settings(), static_floor=math.nan)
