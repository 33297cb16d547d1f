"""Windowing: batch and streaming give the same windows; hand-computed indices."""

from __future__ import annotations

import numpy as np
import pytest

from edge_agent.core import WindowBuffer, WindowSpec, row_scores_from_windows, sliding_windows, window_end_rows


def test_sliding_windows_hand_computed() -> None:
    x = np.arange(10, dtype=float).reshape(5, 2)  # rows: [0,1],[2,3],[4,5],[6,7],[8,9]
    w = sliding_windows(x, WindowSpec(window=3, hop=2))
    assert w.shape == (2, 3, 2)
    np.testing.assert_array_equal(w[0], [[0, 1], [2, 3], [4, 5]])
    np.testing.assert_array_equal(w[1], [[4, 5], [6, 7], [8, 9]])


def test_window_count_and_end_rows() -> None:
    spec = WindowSpec(window=4, hop=3)
    assert spec.count(3) == 0
    assert spec.count(4) == 1
    assert spec.count(10) == 3  # windows start at 0, 3, 6
    np.testing.assert_array_equal(window_end_rows(10, spec), [3, 6, 9])


def test_one_dimensional_input_is_one_feature() -> None:
    w = sliding_windows(np.arange(5.0), WindowSpec(3))
    assert w.shape == (3, 3, 1)
    np.testing.assert_array_equal(w[2, :, 0], [2, 3, 4])


@pytest.mark.parametrize("window,hop", [(2, 1), (3, 2), (5, 5), (4, 7)])
def test_streaming_buffer_matches_batch(window: int, hop: int) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(37, 3)).astype(np.float32)
    spec = WindowSpec(window, hop)
    buf = WindowBuffer(spec, n_features=3)
    streamed = [w.copy() for row in x if (w := buf.push(row)) is not None]
    batch = sliding_windows(x, spec)
    assert len(streamed) == len(batch)
    np.testing.assert_array_equal(np.array(streamed), batch)


def test_buffer_reset_restarts_the_first_window() -> None:
    buf = WindowBuffer(WindowSpec(3, 1), n_features=1)
    for v in (1.0, 2.0):
        assert buf.push(np.array([v])) is None
    buf.reset()
    assert buf.push(np.array([3.0])) is None
    assert buf.push(np.array([4.0])) is None
    np.testing.assert_array_equal(buf.push(np.array([5.0]))[:, 0], [3, 4, 5])


def test_row_scores_streaming_semantics() -> None:
    spec = WindowSpec(window=3, hop=2)  # windows end at rows 2, 4, 6
    rows = row_scores_from_windows(np.array([0.1, 0.5, 0.9]), n_rows=8, spec=spec)
    expected = [np.nan, np.nan, 0.1, 0.1, 0.5, 0.5, 0.9, 0.9]
    np.testing.assert_array_equal(rows, expected)


def test_invalid_spec_rejected() -> None:
    with pytest.raises(ValueError):
        WindowSpec(window=1)
    with pytest.raises(ValueError):
        WindowSpec(window=4, hop=0)


@pytest.mark.parametrize(("window", "hop"), [(4, 1), (5, 2), (8, 3), (6, 6)])
def test_push_many_yields_the_same_windows_at_the_same_samples_as_push(window: int, hop: int) -> None:
    rng = np.random.default_rng(window * 10 + hop)
    rows = rng.normal(size=(97, 2)).astype(np.float32)
    one = WindowBuffer(WindowSpec(window, hop), 2)
    expected = [(i, w.copy()) for i, row in enumerate(rows) if (w := one.push(row)) is not None]
    many = WindowBuffer(WindowSpec(window, hop), 2)
    got, start = [], 0
    for size in [1, 3, 7, 2, 30, 5, 49]:  # uneven blocks, as a source delivers them
        block = rows[start : start + size]
        got += [(start + i, w.copy()) for i, w in many.push_many(block)]
        start += size
    assert start == len(rows)
    assert [i for i, _ in got] == [i for i, _ in expected]
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(got, expected, strict=True))
    assert many.rows_seen == one.rows_seen == len(rows)


def test_push_many_after_reset_starts_a_fresh_window() -> None:
    buf = WindowBuffer(WindowSpec(3, 1), 1)
    assert [i for i, _ in buf.push_many(np.arange(4.0)[:, None])] == [2, 3]
    buf.reset()
    out = [(i, w.ravel().tolist()) for i, w in buf.push_many(np.array([[10.0], [11.0], [12.0]]))]
    assert out == [(2, [10.0, 11.0, 12.0])]
