"""SampleQuality: bad samples, gaps, skip/hold policies, and the agent-style loop on top."""

from __future__ import annotations

import numpy as np
import pytest

from edge_agent.core.windowing import WindowBuffer, WindowSpec, sliding_windows
from edge_agent.quality import SampleQuality
from edge_agent.sources.base import SampleBlock

NAN = float("nan")


def block(rows, t0=0.0, rate=10.0, valid=None, gap_before=0, stamps=None) -> SampleBlock:
    values = np.asarray(rows, dtype=np.float32).reshape(len(rows), -1)
    if stamps is None:
        stamps = t0 + np.arange(len(rows)) / rate
    return SampleBlock(values, np.asarray(stamps, dtype=np.float64),
                       None if valid is None else np.asarray(valid), gap_before)


def flatten(runs):
    return [(run.values.tolist(), run.reset_before) for run in runs]


def test_clean_block_passes_through_unchanged():
    q = SampleQuality(2, valid_range=(-5, 5), rate_hz=10.0)
    b = block([[1, 2], [3, 4], [5, -5]])
    runs = q.clean(b)
    assert flatten(runs) == [([[1, 2], [3, 4], [5, -5]], False)]
    assert runs[0].values is b.values or np.shares_memory(runs[0].values, b.values)  # no copy
    assert q.counters() == {"bad_samples": 0, "held_samples": 0, "dropped_samples": 0, "gaps": 0,
                            "window_resets": 0, "skipped_in_window": 0}


def test_skip_drops_bad_samples_and_resets_after_them():
    q = SampleQuality(2, valid_range=(-10, 10), policy="skip")
    runs = q.clean(block([[1, 1], [NAN, 2], [3, 3], [4, 99], [np.inf, 5], [6, 6], [7, 7]]))
    # NaN, out-of-range 99 and inf are dropped; the lone NaN is skipped inside the window, the
    # two bad rows in a row are a hole: the rows after it start a fresh window.
    assert flatten(runs) == [([[1, 1], [3, 3]], False), ([[6, 6], [7, 7]], True)]
    assert q.bad_samples == 3 and q.dropped_samples == 3 and q.held_samples == 0
    assert q.window_resets == 1 and q.skipped_in_window == 1


def test_skip_keeps_scoring_through_one_bad_line_in_forty():
    # One garbled sample in 40 (the stdin case): windows of 128 must still be scored.
    from edge_agent.core import WindowBuffer, WindowSpec

    q = SampleQuality(1, policy="skip")
    buffer = WindowBuffer(WindowSpec(128, 4), 1)
    values = np.arange(4000, dtype=np.float32)[:, None]
    values[39:3999:40] = NAN  # 99 bad lines, the last one well inside the stream
    windows = 0
    for i in range(0, 4000, 64):
        for run in q.clean(block(values[i:i + 64])):
            if run.reset_before:
                buffer.reset()
            windows += sum(1 for _ in buffer.push_many(run.values))
    good = 4000 - 99
    assert windows == (good - 128) // 4 + 1  # every window a clean stream of that length would give
    assert q.window_resets == 0 and q.skipped_in_window == 99 and q.dropped_samples == 99


def test_skip_carries_reset_into_the_next_block():
    q = SampleQuality(1, policy="skip")
    assert flatten(q.clean(block([[1], [2], [NAN]]))) == [([[1], [2]], False)]
    assert flatten(q.clean(block([[NAN]]))) == []
    assert flatten(q.clean(block([[5], [6]]))) == [([[5], [6]], True)]
    assert q.bad_samples == 2


def test_hold_repairs_per_feature_with_last_good_value():
    q = SampleQuality(2, valid_range=(-10, 10), policy="hold")
    runs = q.clean(block([[1, 10], [NAN, 20 - 30], [3, 99]]))
    # NaN x -> held 1; 99 y -> held -10 (the last good y, itself in range).
    assert flatten(runs) == [([[1, 10], [1, -10], [3, -10]], False)]
    assert q.held_samples == 2 and q.dropped_samples == 0
    # Across blocks: the next block's bad value uses the previous block's last good.
    assert flatten(q.clean(block([[NAN, 2]], t0=1))) == [([[3, 2]], False)]


def test_hold_drops_samples_before_any_good_value():
    q = SampleQuality(1, policy="hold")
    runs = q.clean(block([[NAN], [NAN], [4], [NAN]]))
    assert flatten(runs) == [([[4], [4]], True)]
    assert q.dropped_samples == 2 and q.held_samples == 1 and q.bad_samples == 3


def test_source_marked_invalid_rows_are_bad():
    q = SampleQuality(1, policy="hold")
    runs = q.clean(block([[1], [123], [3]], valid=[True, False, True]))
    assert flatten(runs) == [([[1], [1], [3]], False)]
    assert q.bad_samples == 1


@pytest.mark.parametrize("policy", ["skip", "hold"])
def test_gaps_reset_the_window_under_both_policies(policy):
    q = SampleQuality(1, policy=policy, rate_hz=10.0)
    assert flatten(q.clean(block([[1], [2]], t0=0.0))) == [([[1], [2]], False)]
    # gap_before from the source (FIFO overflow)
    assert flatten(q.clean(block([[3]], t0=5.0, gap_before=40))) == [([[3]], True)]
    # timestamps jump inside a block: 5.1 -> 7.0 is more than 1.5 periods
    runs = q.clean(block([[4], [5], [6]], stamps=[5.1, 7.0, 7.1]))
    assert flatten(runs) == [([[4]], False), ([[5], [6]], True)]
    # ... and between blocks
    assert flatten(q.clean(block([[7]], stamps=[9.0]))) == [([[7]], True)]
    assert q.gaps == 3


def test_small_jitter_is_not_a_gap():
    q = SampleQuality(1, rate_hz=10.0)
    runs = q.clean(block([[1], [2], [3]], stamps=[0.0, 0.14, 0.25]))
    assert len(runs) == 1 and q.gaps == 0


def test_agent_loop_never_scores_a_window_with_bad_samples():
    """The loop from the module docstring: windows come out exactly as the batch
    windowing of each clean stretch, none contains a bad or a gap."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 2)).astype(np.float32)
    x[[50, 51, 180], 0] = np.nan
    q = SampleQuality(2, policy="skip", rate_hz=100.0)
    spec = WindowSpec(window=16, hop=4)
    buffer = WindowBuffer(spec, 2)
    windows = []
    for start in range(0, 300, 37):  # odd block sizes so holes cross block borders
        stop = min(start + 37, 300)
        for run in q.clean(block(x[start:stop], t0=start / 100.0, rate=100.0)):
            if run.reset_before:
                buffer.reset()
            for i in range(len(run.values)):
                w = buffer.push(run.values[i])
                if w is not None:
                    windows.append(w.copy())
    # 50-51 is a hole (two in a row): a fresh window after it; the lone bad row 180 is skipped inside.
    stretches = [x[0:50], np.concatenate([x[52:180], x[181:300]])]
    expected = np.concatenate([sliding_windows(part, spec) for part in stretches])
    assert np.isfinite(np.array(windows)).all()
    np.testing.assert_array_equal(np.array(windows), expected)
