"""Scaler, window score and EWMA with hand-computed expectations."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edge_agent.core import Ewma, Scaler, WindowScore, ewma, score_windows


def test_minmax_fitted_on_training_rows_only() -> None:
    train = np.array([[0.0, 10.0], [2.0, 30.0], [4.0, 20.0]])
    s = Scaler.fit(train, "minmax")
    assert s.offset == [0.0, 10.0]
    assert s.scale == [4.0, 20.0]
    # A test value outside the training range maps outside [0, 1]: no refit.
    np.testing.assert_allclose(s.transform(np.array([[6.0, 10.0]])), [[1.5, 0.0]])


def test_standard_scaler_and_constant_feature() -> None:
    train = np.array([[1.0, 5.0], [3.0, 5.0]])
    s = Scaler.fit(train, "standard")
    assert s.offset == [2.0, 5.0]
    assert s.scale == [1.0, 1.0]  # std of [1, 3] is 1; constant feature gets scale 1
    np.testing.assert_allclose(s.transform(np.array([[4.0, 7.0]])), [[2.0, 2.0]])


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
        Scaler.fit(np.ones((3, 1)), "robust")


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
