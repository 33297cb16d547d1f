"""Per-row localized scores: step errors from the scorers, and their causal aggregation over windows."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.models import normal_rows


def test_scorer_step_errors_average_to_the_feature_errors(tiny_bundle_3f: Path) -> None:
    from edge_agent.bundle import load_bundle
    from edge_agent.core import sliding_windows
    from edge_agent.runtime import Scorer

    bundle = load_bundle(tiny_bundle_3f)
    scorer = Scorer(bundle)
    for window in sliding_windows(normal_rows(60, 3, 1), bundle.spec)[:3]:
        result = scorer.score(window)
        assert result.step_errors is not None
        assert result.step_errors.shape == (bundle.spec.window, 3)
        np.testing.assert_array_equal(result.step_errors.mean(axis=0), result.feature_errors)
