"""Per-row localized scores: step errors from the scorers, and their causal aggregation over windows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

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


def _feed(agg, step_errors: np.ndarray, window: int, hop: int, blocks: list[int] | None = None):
    """Windows ending at window-1, window-1+hop, ...; rows handed over in blocks of the sizes ``blocks``."""
    n_rows = window + (len(step_errors) - 1) * hop
    ends = window - 1 + hop * np.arange(len(step_errors))
    out_rows, out_scores = [], []
    start, b, k = 0, 0, 0
    while start < n_rows:
        size = (blocks or [n_rows])[b % len(blocks or [n_rows])]
        rows = np.arange(start, min(start + size, n_rows))
        agg.extend(rows, rows * 0.5)
        while k < len(ends) and ends[k] <= rows[-1]:
            n = agg.add_window(step_errors[k], int(rows[-1] - ends[k]))
            assert n == agg.last - agg.first
            out_rows.extend(agg.rows[agg.first:agg.last].tolist())
            out_scores.extend(agg.scores[agg.first:agg.last].tolist())
            np.testing.assert_array_equal(agg.times[agg.first:agg.last], agg.rows[agg.first:agg.last] * 0.5)
            k += 1
        start, b = rows[-1] + 1, b + 1
    return np.array(out_rows), np.array(out_scores)


def test_row_score_is_the_mean_over_the_windows_that_covered_the_row() -> None:
    from edge_agent.core.row_scores import RowAggregator

    # window 4, hop 2: windows cover rows 0-3, 2-5, 4-7, ...; window k has error k on every row.
    steps = np.arange(5, dtype=np.float64)[:, None, None] * np.ones((5, 4, 1))
    rows, scores = _feed(RowAggregator(4, 2, np.array([1.0])), steps, 4, 2)
    # default delay = window - 1: a row is final once every window covering it has been scored
    assert rows.tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8]
    np.testing.assert_allclose(scores, [0, 0, 0.5, 0.5, 1.5, 1.5, 2.5, 2.5, 3.5])
    # delay 0: a row is final at the first window ending at or after it (causal, no waiting)
    rows, scores = _feed(RowAggregator(4, 2, np.array([1.0]), delay=0), steps, 4, 2)
    assert rows.tolist() == list(range(12))
    np.testing.assert_allclose(scores, [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4])


def test_row_scores_match_a_direct_computation_whatever_the_read_sizes() -> None:
    from edge_agent.core.row_scores import RowAggregator

    rng = np.random.default_rng(3)
    window, hop, n_windows = 16, 3, 400
    weights = np.array([0.2, 0.8])
    steps = rng.gamma(2.0, size=(n_windows, window, 2))
    n_rows = window + (n_windows - 1) * hop
    sums, counts = np.zeros((n_rows, 2)), np.zeros(n_rows)
    for k in range(n_windows):
        sums[k * hop:k * hop + window] += steps[k]
        counts[k * hop:k * hop + window] += 1
    for delay in (0, 5, window - 1):
        rows, scores = _feed(RowAggregator(window, hop, weights, delay), steps, window, hop, blocks=[1, 7, 2, 300, 3])
        assert rows.tolist() == list(range(len(rows))) and len(rows) == n_rows - delay
        # reference: row r is final at the first window ending at or after r + delay, with the
        # windows ended by then that cover it
        ends = window - 1 + hop * np.arange(n_windows)
        expect = []
        for r in rows:
            final_at = ends[np.searchsorted(ends, r + delay)]
            ks = [k for k in range(n_windows) if k * hop <= r <= ends[k] <= final_at]
            expect.append(float(np.mean([steps[k, r - k * hop] @ weights for k in ks])))
        np.testing.assert_allclose(scores, expect, rtol=1e-12)
    # with every covering window, the direct per-row mean
    rows, scores = _feed(RowAggregator(window, hop, weights), steps, window, hop)
    np.testing.assert_allclose(scores, (sums[rows] / counts[rows, None]) @ weights, rtol=1e-12)


def test_score_settings_parse_and_refuse_bad_values() -> None:
    import pytest

    from edge_agent.detection.settings import DetectionSettings, ScoreSettings
    from edge_agent.errors import VigilInputError

    assert DetectionSettings.from_dict({}).score == ScoreSettings(mode="window")
    parsed = DetectionSettings.from_dict({"score": {"mode": "row", "reduce": "mean", "delay_rows": 8}})
    assert parsed.score == ScoreSettings("row", 8, "mean")
    assert DetectionSettings.from_dict(parsed.to_dict()) == parsed
    with pytest.raises(VigilInputError, match="detection.score.mode"):
        DetectionSettings.from_dict({"score": {"mode": "rows"}})
    with pytest.raises(VigilInputError, match="detection.score.delay_rows"):
        DetectionSettings.from_dict({"score": {"mode": "row", "delay_rows": -1}})


def test_the_trainer_writes_the_window_mean_by_default_and_row_scores_parse() -> None:
    from edge_agent.detection.policy import default_detection
    from edge_agent.detection.settings import DetectionSettings
    from trainer.detection_meta import detection_section

    # The window mean measured best on the quality benchmark (benchmarks/notes/quality.md).
    assert default_detection(128, 4, 100.0).score.mode == "window"
    assert default_detection(16, 32).score.mode == "window"
    section = detection_section(normal_rows(400, 2, 0), ["a", "b"], 32, 4, 10.0)
    assert section["score"]["mode"] == "window"
    assert DetectionSettings.from_dict({"score": section["score"]}).score.mode == "window"
    assert DetectionSettings.from_dict({"policy": {"k": 1}}).score.mode == "window"  # no score section
    row = DetectionSettings.from_dict({"score": {"mode": "row"}}).score
    assert (row.mode, row.reduce) == ("row", "max")  # the per-row option keeps its defaults


@pytest.mark.parametrize("n_features", [1, 3, 9])  # 9: numpy sums the features pairwise
def test_a_block_of_windows_at_once_is_bit_identical_to_window_by_window(n_features: int) -> None:
    from edge_agent.core.row_scores import RowAggregator

    rng = np.random.default_rng(11)
    window, hop = 16, 3
    weights = rng.random(n_features) + 0.1
    weights /= weights.sum()
    steps = rng.gamma(2.0, size=(300, window, n_features))
    ends = window - 1 + hop * np.arange(300)
    one, many = RowAggregator(window, hop, weights), RowAggregator(window, hop, weights)
    got_one, got_many, used_blocks = [], [], 0
    start, k = 0, 0
    for size in [5, 40, 1, 17, 300, 2, 64] * 20:
        rows = np.arange(start, start + size)
        if rows[0] > ends[-1]:
            break
        for agg in (one, many):
            agg.extend(rows, rows * 1.0)
        block = [j for j in range(k, len(ends)) if ends[j] <= rows[-1]]
        for j in block:
            one.add_window(steps[j], int(rows[-1] - ends[j]))
            got_one.extend(one.scores[one.first:one.last].tolist())
        spans = many.add_windows([steps[j] for j in block], rows[-1] - ends[block]) if block else None
        if spans is None:
            for j in block:
                many.add_window(steps[j], int(rows[-1] - ends[j]))
                got_many.extend(many.scores[many.first:many.last].tolist())
        else:
            used_blocks += 1
            first, last = spans
            for a, b in zip(first, last, strict=True):
                got_many.extend(many.scores[a:b].tolist())
        k += len(block)
        start = rows[-1] + 1
    assert used_blocks > 10 and len(got_one) > 500
    assert got_many == got_one  # exact, not approximately
