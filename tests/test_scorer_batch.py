"""``Scorer.score_many``: the same numbers as ``Scorer.score`` window by window, on a real bundle."""

from __future__ import annotations

import numpy as np
import pytest

from edge_agent.bundle import load_bundle
from edge_agent.runtime import Scorer


def _windows(bundle, n: int, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(bundle.spec.window * 2 + n)[:, None]
    values = np.sin(t / 7.0 + np.arange(bundle.n_features)) + 0.1 * rng.standard_normal((len(t), bundle.n_features))
    values[len(t) // 2:, 0] += 3.0  # a level jump, so some windows score high and some low
    return np.stack([values[i:i + bundle.spec.window] for i in range(n)])


def test_score_many_is_score_of_each_window(tiny_bundle_3f) -> None:
    bundle = load_bundle(tiny_bundle_3f)
    scorer = Scorer(bundle)
    windows = _windows(bundle, 17)
    one_by_one = [scorer.score(w) for w in windows]
    batched = scorer.score_many(windows)
    assert len(batched) == len(windows)
    for a, b in zip(one_by_one, batched, strict=True):
        assert a.score == b.score  # identical, not close: the device's score must not depend on batching
        np.testing.assert_array_equal(a.feature_errors, b.feature_errors)
        assert a.step_errors is not None and b.step_errors is not None
        np.testing.assert_array_equal(a.step_errors, b.step_errors)
    assert len({round(r.score, 12) for r in batched}) > 1  # the windows really differ


def test_score_many_state_does_not_leak_between_windows(tiny_bundle_3f) -> None:
    bundle = load_bundle(tiny_bundle_3f)
    scorer = Scorer(bundle)
    windows = _windows(bundle, 6)
    forward = scorer.score_many(windows)
    backward = scorer.score_many(windows[::-1])[::-1]
    assert [r.score for r in forward] == [r.score for r in backward]


def test_score_many_empty_and_wrong_shape(tiny_bundle_3f) -> None:
    bundle = load_bundle(tiny_bundle_3f)
    scorer = Scorer(bundle)
    assert scorer.score_many(np.zeros((0, bundle.spec.window, bundle.n_features))) == []
    with pytest.raises(ValueError, match="windows shape"):
        scorer.score_many(np.zeros((2, bundle.spec.window + 1, bundle.n_features)))
