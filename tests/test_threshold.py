"""Threshold strategies with hand-computed expectations."""

from __future__ import annotations

import numpy as np
import pytest

from edge_agent.errors import VigilInputError
from trainer.threshold import (
    candidate_thresholds,
    error_stats,
    labeled_threshold,
    normal_threshold,
    parse_strategy,
)

# mean 5, population std 2 (values 2, 4, 4, 4, 5, 5, 7, 9: the textbook example)
SCORES = np.array([2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0])


@pytest.mark.parametrize(
    "text, k, name, params",
    [
        ("mean+k*std", 3.0, "mean+k*std", {"k": 3.0}),
        ("mean+k*std", 2.5, "mean+k*std", {"k": 2.5}),
        ("mean+3std", 1.0, "mean+k*std", {"k": 3.0}),
        ("Mean + 2.5*std", 1.0, "mean+k*std", {"k": 2.5}),
        ("percentile:99.5", 3.0, "percentile", {"p": 99.5}),
        ("max", 3.0, "max", {}),
        ("best-f1", 3.0, "best-f1", {}),
        ("pr-balance", 3.0, "pr-balance", {}),
    ],
)
def test_parse_strategy(text: str, k: float, name: str, params: dict) -> None:
    strategy = parse_strategy(text, k)
    assert strategy.name == name
    assert strategy.params == params
    assert strategy.needs_labels == (name in ("best-f1", "pr-balance"))


@pytest.mark.parametrize("text", ["median", "percentile:0", "percentile:101", "percentile:x", "mean+-2std", ""])
def test_parse_strategy_rejects_bad_text(text: str) -> None:
    with pytest.raises(VigilInputError) as info:
        parse_strategy(text)
    assert "\n" not in str(info.value)


def test_mean_k_std() -> None:
    assert normal_threshold(SCORES, parse_strategy("mean+k*std", 3.0)) == pytest.approx(5.0 + 3 * 2.0)
    assert normal_threshold(SCORES, parse_strategy("mean+k*std", 0.5)) == pytest.approx(6.0)


def test_percentile_and_max() -> None:
    # numpy's linear interpolation: 50th percentile of 8 values = mean of 4th and 5th = (4 + 5) / 2
    assert normal_threshold(SCORES, parse_strategy("percentile:50")) == pytest.approx(4.5)
    assert normal_threshold(SCORES, parse_strategy("percentile:100")) == pytest.approx(9.0)
    assert normal_threshold(SCORES, parse_strategy("max")) == 9.0


def test_nan_scores_are_ignored() -> None:
    with_nan = np.concatenate([[np.nan, np.nan], SCORES])
    assert normal_threshold(with_nan, parse_strategy("max")) == 9.0
    assert error_stats(with_nan)["mean"] == pytest.approx(5.0)
    assert error_stats(with_nan)["std"] == pytest.approx(2.0)


def test_no_scores_is_an_input_error() -> None:
    with pytest.raises(VigilInputError):
        normal_threshold(np.array([np.nan]), parse_strategy("max"))


def test_candidates_are_midpoints() -> None:
    c = candidate_thresholds(np.array([3.0, 1.0, 2.0, 2.0]))
    assert c[0] < 1.0
    assert c[1:].tolist() == [1.5, 2.5, 3.0]


def test_pr_balance_by_hand() -> None:
    # 10 scored rows, labeled rows 6..8 (3 rows). The 3 highest scores are rows 7, 8, 2,
    # the 4th highest is row 6 (0.6): threshold halfway between 0.7 (3rd) and 0.6 (4th).
    scores = np.array([np.nan, 0.1, 0.7, 0.2, 0.3, 0.1, 0.6, 0.9, 0.8, 0.2])
    value, achieved = labeled_threshold(scores, [(6, 8)], parse_strategy("pr-balance"))
    assert value == pytest.approx(0.65)
    # predicted rows 2, 7, 8: tp 2 of 3 predicted, 2 of 3 labeled
    assert achieved["point_precision"] == pytest.approx(2 / 3)
    assert achieved["point_recall"] == pytest.approx(2 / 3)


def test_best_f1_by_hand() -> None:
    pytest.importorskip("trainer.metrics")
    # One labeled event, rows 10..14. Noise bumps at rows 3 (0.5) and 20 (0.7); the event peaks at 0.9
    # and its lowest labeled score is 0.4.
    scores = np.full(30, 0.1)
    scores[:2] = np.nan
    scores[3], scores[20] = 0.5, 0.7
    scores[10:15] = [0.4, 0.6, 0.9, 0.8, 0.6]
    # Event F1 = 1 at 0.75 (rows 12, 13), at 0.85 (row 12) and, degenerately, below every score
    # (one event covering all rows). Point F1 breaks the tie: 2*2/(2+5) at 0.75, 2*1/(1+5) at 0.85,
    # 2*5/(28+5) below everything -> 0.75.
    value, achieved = labeled_threshold(scores, [(10, 14)], parse_strategy("best-f1"))
    assert value == pytest.approx(0.75)
    assert achieved["event_f1"] == pytest.approx(1.0)
    assert achieved["event_recall"] == pytest.approx(1.0)


def test_labeled_strategy_without_events_is_an_input_error() -> None:
    with pytest.raises(VigilInputError):
        labeled_threshold(np.arange(5.0), [], parse_strategy("pr-balance"))
