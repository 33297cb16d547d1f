"""Trainer helpers without training: skill ratio, window choice, feature stats, cleaning, budgets."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from edge_agent.errors import VigilInputError
from trainer.calibrate import (
    DEFAULT_WINDOW_RISK,
    calibrate_threshold,
    parse_false_alarms,
)
from trainer.prepare import (
    CleanSetting,
    choose_window,
    clean_windows,
    constant_feature_notes,
    feature_stats,
    near_constant_features,
    parse_clean,
)
from trainer.skill import (
    SKILL_WARN_LIMIT,
    deviation_autocorrelation,
    skill_ratio,
    skill_warning,
    trivial_reconstruction,
)
from trainer.window_choice import dominant_period, largest_window


def _windows(n: int = 40, w: int = 16, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(w)[None, :, None]
    return np.sin(2 * np.pi * t / 8 + rng.uniform(0, 6, (n, 1, 1))) + rng.normal(0, 0.05, (n, w, 1)) + 3.0


def test_skill_ratio_is_0_for_perfect_1_for_the_mean_and_nan_when_flat() -> None:
    w = _windows()
    assert skill_ratio(w, w) == pytest.approx(0.0)
    assert skill_ratio(w, trivial_reconstruction(w)) == pytest.approx(1.0)
    # half the residual left -> a quarter of the squared error, half of the absolute one
    half = trivial_reconstruction(w) + 0.5 * (w - trivial_reconstruction(w))
    assert skill_ratio(w, half, "mse") == pytest.approx(0.25)
    assert skill_ratio(w, half, "mae") == pytest.approx(0.5)
    flat = np.ones((5, 16, 2))
    assert np.isnan(skill_ratio(flat, flat))


def test_skill_warning_names_a_cause_only_above_the_limit() -> None:
    assert skill_warning(SKILL_WARN_LIMIT - 0.01, 1, 10, 128, None) is None
    stalled = skill_warning(1.1, 1, 6, 128, None)
    assert stalled is not None and "stalled" in stalled and "--learning-rate" in stalled
    short = skill_warning(0.95, 20, 25, 64, 300)
    assert short is not None and "--window" in short and "300" in short


def test_noise_around_a_level_is_named_as_the_cause() -> None:
    rng = np.random.default_rng(1)
    noise = rng.normal(0, 1, (60, 32, 1)) + rng.uniform(-3, 3, (60, 1, 1))  # white noise at random levels
    assert abs(deviation_autocorrelation(noise)) < 0.1
    assert deviation_autocorrelation(_windows()) > 0.5  # a sine inside each window is predictable
    assert deviation_autocorrelation(np.ones((4, 16, 1))) is None
    warning = skill_warning(1.0, 5, 20, 128, None, deviation_autocorrelation(noise))
    assert warning is not None and "noise around its level" in warning
    assert "autocorrelation" not in (skill_warning(1.0, 5, 20, 128, None, 0.9) or "")


def test_dominant_period_of_a_sine_and_none_for_a_trend() -> None:
    t = np.arange(2000)
    x = np.sin(2 * np.pi * t / 37) + np.random.default_rng(0).normal(0, 0.2, t.size)
    assert dominant_period(x) in (36, 37, 38)
    assert dominant_period(np.column_stack([x, np.sin(2 * np.pi * t / 37 + 1)])) in (36, 37, 38)
    assert dominant_period(t.astype(float)) is None
    assert dominant_period(np.ones(100)) is None


def test_choose_window_keeps_a_fitting_window_and_shortens_from_the_period() -> None:
    t = np.arange(300)
    rows = np.sin(2 * np.pi * t / 24)[:, None]
    # 300 rows, 20% held out = 60 rows; 8 held-out windows at hop 4 need window + 28 <= 60
    assert largest_window(300, 0.2, 4, 8) == 32
    window, hop, note = choose_window(128, 4, 300, 0.2, 8, lambda: rows)
    assert window == 24 and hop == 4 and note is not None
    assert note["dominant_period"] == 24 and note["largest_possible"] == 32
    assert choose_window(16, 4, 300, 0.2, 8, lambda: rows) == (16, 4, None)
    # too short even for the smallest automatic window at hop 1: left to the split check's error
    assert choose_window(128, 4, 40, 0.2, 8, lambda: rows[:40]) == (128, 4, None)


def test_choose_window_lowers_the_hop_when_even_the_smallest_window_does_not_fit() -> None:
    # 186 rows (a short NAB probationary slice): 37 held out. At hop 4, 8 held-out windows need
    # window + 28 <= 37, so nothing from 16 up fits; at hop 3: window + 21 <= 37 -> exactly 16.
    t = np.arange(186)
    rows = np.sin(2 * np.pi * t / 20)[:, None]
    assert largest_window(186, 0.2, 4, 8) < 16
    window, hop, note = choose_window(128, 4, 186, 0.2, 8, lambda: rows)
    assert hop == 3 and largest_window(186, 0.2, 3, 8) == 16
    # the period (20 rows) is longer than what fits: the largest window that fits
    assert window == 16 and note is not None and note["hop"] == 3 and note["requested_hop"] == 4
    # the chosen window and hop leave 8 held-out windows
    n_held = round(186 * 0.2)
    assert (n_held - window) // hop + 1 >= 8


def test_feature_stats_flags_constant_and_near_constant() -> None:
    rows = np.column_stack([np.linspace(0, 1, 200), np.full(200, 7.0), np.r_[np.zeros(199), 1.0]])
    stats = feature_stats(rows, ["a", "b", "c"])
    assert stats["b"]["constant"] and not stats["a"]["constant"]
    assert stats["b"]["resolution"] == pytest.approx(7e-3) and stats["b"]["std"] == 0.0
    assert stats["c"]["resolution"] == 1.0 and stats["c"]["max"] == 1.0
    near = near_constant_features(rows, ["a", "b", "c"])
    assert near == ["c"]
    notes = constant_feature_notes(stats, near)
    assert any("'b' is constant" in n for n in notes) and any("'c' sits at one value" in n for n in notes)
    assert not any("every feature" in n for n in notes)
    only_b = constant_feature_notes(feature_stats(rows[:, 1:2], ["b"]), [])
    assert any("every feature is constant" in n for n in only_b)


def test_clean_drops_injected_outlier_windows_and_auto_keeps_clean_data() -> None:
    w = _windows(400)
    dirty = w.copy()
    dirty[:8] += np.random.default_rng(1).normal(0, 3.0, dirty[:8].shape)
    kept, info = clean_windows(dirty, CleanSetting("contamination", 0.02), seed=0)
    assert info["dropped"] == 8 and len(kept) == 392
    assert np.abs(kept - 3.0).max() < 2.0  # the wild windows are the ones gone
    _, auto = clean_windows(dirty, parse_clean("auto"), seed=0)
    assert 1 <= auto["dropped"] <= 20
    _, off = clean_windows(dirty, parse_clean("off"), seed=0)
    assert off["dropped"] == 0


@pytest.mark.parametrize("text", ["sometimes", "contamination=0.7", "contamination=x"])
def test_parse_clean_rejects_bad_text(text: str) -> None:
    with pytest.raises(VigilInputError):
        parse_clean(text)


def test_false_alarm_budget_to_per_window_risk() -> None:
    day = parse_false_alarms("1/day")
    q, note = day.q_risk(100.0, 4)  # 25 windows per second
    assert q == pytest.approx(1 / (86400 * 25)) and note is None
    q, note = day.q_risk(None, 4)
    assert q == DEFAULT_WINDOW_RISK and note is not None and "sample rate" in note
    assert parse_false_alarms("2/week").q_risk(1.0, 1)[0] == pytest.approx(2 / 604800)
    assert parse_false_alarms("1/1000windows").q_risk(None, 4)[0] == pytest.approx(1e-3)
    auto = parse_false_alarms("auto")
    assert auto.q_risk(100.0, 4) == (pytest.approx(1 / (86400 * 25)), None)  # 1/day is the stricter
    assert auto.q_risk(1 / 3600, 4) == (DEFAULT_WINDOW_RISK, None)  # hourly rows: 1e-3 per window is
    assert auto.q_risk(None, 4) == (DEFAULT_WINDOW_RISK, None)
    for bad in ("1/window", "often", "0/day", "1/fortnight"):
        with pytest.raises(VigilInputError):
            parse_false_alarms(bad)


def test_calibrated_threshold_reports_the_expected_rate() -> None:
    scores = np.random.default_rng(0).exponential(1.0, 5000)
    value, params, _ = calibrate_threshold(scores, parse_false_alarms("1/day"), 1 / 300, 1)  # 5-minute rows
    q = 1 / 288
    assert params["q_risk"] == pytest.approx(q)
    assert params["expected_false_alarms_per_day"] == pytest.approx(1.0)
    assert value == pytest.approx(-np.log(q), rel=0.1)
    assert params["heldout_exceedance"] == pytest.approx(q, rel=0.5)


def test_baseline_module_does_not_import_fit() -> None:
    code = "import sys, trainer.baseline; assert 'trainer.fit' not in sys.modules, 'cycle'"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
