"""Scaler, window score and EWMA with hand-computed expectations."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edge_agent.core import Ewma, Scaler, WindowScore, ewma, score_windows
from edge_agent.core.scaler import resolution_floor


def test_minmax_fitted_on_training_rows_only() -> None:
    train = np.array([[0.0, 10.0], [2.0, 30.0], [4.0, 20.0]])
    s = Scaler.fit(train, "minmax")
    assert s.offset == [0.0, 10.0]
    assert s.scale == [4.0, 20.0]
    # A test value outside the training range maps outside [0, 1]: no refit.
    np.testing.assert_allclose(s.transform(np.array([[6.0, 10.0]])), [[1.5, 0.0]])


def test_standard_scaler_and_constant_feature() -> None:
    train = np.array([[1.0, 5.0], [3.0, 5.0], [1.5, 5.0], [2.5, 5.0]])
    s = Scaler.fit(train, "standard")
    assert s.offset == [2.0, 5.0]
    # std of [1, 3, 1.5, 2.5] is sqrt(0.625); the constant 5 gets its tolerance max(1e-3 * 5, 1e-3) as scale
    assert s.scale == pytest.approx([np.sqrt(0.625), 0.005])
    np.testing.assert_allclose(s.transform(np.array([[4.0, 7.0]])), [[2.0 / np.sqrt(0.625), 400.0]], rtol=1e-5)
    # no scale below the resolution floor: two values 2 apart have std 1 but a step of 2
    assert Scaler.fit(np.array([[1.0], [3.0]]), "standard").scale == [2.0]


def test_resolution_floor_by_hand() -> None:
    assert resolution_floor(np.array([3.0, 1.0, 1.5, 3.0])) == pytest.approx(0.5)
    assert resolution_floor(np.array([0.0, 0.0])) == pytest.approx(1e-3)
    assert resolution_floor(np.array([-200.0] * 3)) == pytest.approx(0.2)


def test_constant_feature_departure_is_a_large_error_in_every_kind() -> None:
    train = np.column_stack([np.linspace(0.0, 1.0, 50), np.full(50, 2.0)])
    for kind in ("minmax", "standard", "robust"):
        s = Scaler.fit(train, kind)
        assert s.scale[1] == pytest.approx(2e-3)
        scaled = s.transform(np.array([[0.5, 2.0], [0.5, 2.01]]))
        assert scaled[0, 1] == pytest.approx(0.0) and scaled[1, 1] == pytest.approx(5.0, rel=1e-3)


def test_robust_scaler_median_and_iqr() -> None:
    train = np.array([[0.0], [1.0], [2.0], [3.0], [4.0], [1000.0]])  # one spike does not stretch it
    s = Scaler.fit(train, "robust")
    q25, q50, q75 = np.percentile(train[:, 0], [25, 50, 75])
    assert s.offset == [pytest.approx(q50)] and s.scale == [pytest.approx(q75 - q25)]
    assert Scaler.fit(train, "minmax").scale == [1000.0]


def test_clipping_bounds_by_hand_and_json() -> None:
    train = np.array([[0.0, 5.0], [10.0, 5.0]])
    s = Scaler.fit(train, "minmax", clip=1.0)
    # feature 0 scaled range [0, 1] widened by 1 width each side; the constant feature by 1 unit
    assert s.clip_low == pytest.approx([-1.0, -1.0]) and s.clip_high == pytest.approx([2.0, 1.0])
    out = s.transform(np.array([[1e6, 5.0], [-1e6, 4.0], [5.0, 5.001]]))
    np.testing.assert_allclose(out, [[2.0, 0.0], [-1.0, -1.0], [0.5, 0.2]], rtol=1e-4)
    back = Scaler.from_dict(json.loads(json.dumps(s.to_dict())))
    assert back == s and back.clips
    assert "clip_low" not in Scaler.fit(train, "minmax").to_dict()


def test_scaler_round_trips_through_json() -> None:
    s = Scaler.fit(np.random.default_rng(1).normal(size=(50, 3)), "standard")
    back = Scaler.from_dict(json.loads(json.dumps(s.to_dict())))
    assert back == s
    x = np.ones((2, 3))
    np.testing.assert_allclose(back.inverse_transform(back.transform(x)), x, rtol=1e-6)


def test_scaler_rejects_bad_parameters() -> None:
    with pytest.raises(ValueError):
        Scaler.from_dict({"kind": "minmax", "offset": [0.0], "scale": [0.0]})
    with pytest.raises(ValueError):
        Scaler.fit(np.ones((3, 1)), "quantile")
    with pytest.raises(ValueError):
        Scaler.from_dict({"kind": "minmax", "offset": [0.0], "scale": [1.0], "clip_low": [1.0], "clip_high": [0.0]})
    with pytest.raises(ValueError):
        Scaler.from_dict({"kind": "minmax", "offset": [0.0], "scale": [1.0], "clip_low": [0.0]})


def test_mse_and_mae_scores_hand_computed() -> None:
    windows = np.zeros((1, 2, 2))
    recon = np.array([[[1.0, 2.0], [3.0, 0.0]]])
    scores, errors = score_windows(windows, recon, "mse")
    # feature 0: (1 + 9) / 2 = 5; feature 1: (4 + 0) / 2 = 2; mean = 3.5
    np.testing.assert_allclose(errors, [[5.0, 2.0]])
    np.testing.assert_allclose(scores, [3.5])
    scores, errors = score_windows(windows, recon, "mae")
    np.testing.assert_allclose(errors, [[2.0, 1.0]])
    np.testing.assert_allclose(scores, [1.5])


def test_feature_weights_and_contributions() -> None:
    windows = np.zeros((1, 2, 2))
    recon = np.array([[[1.0, 2.0], [3.0, 0.0]]])
    scores, errors = score_windows(windows, recon, "mse", weights=[3.0, 1.0])
    np.testing.assert_allclose(scores, [(3 * 5.0 + 1 * 2.0) / 4])
    contrib = WindowScore(float(scores[0]), errors[0]).contributions()
    np.testing.assert_allclose(contrib, [5 / 7, 2 / 7])
    with pytest.raises(ValueError):
        score_windows(windows, recon, "mse", weights=[1.0, -1.0])


def test_ewma_batch_equals_streaming_and_hand_values() -> None:
    x = np.array([1.0, 3.0, 3.0, 0.0])
    out = ewma(x, 0.5)
    np.testing.assert_allclose(out, [1.0, 2.0, 2.5, 1.25])
    stream = Ewma(0.5)
    np.testing.assert_allclose([stream.update(v) for v in x], out)
    np.testing.assert_allclose(ewma(x, None), x)
    with pytest.raises(ValueError):
        Ewma(0.0)
