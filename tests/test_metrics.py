"""Point-wise and event-wise metrics and AUCs against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from trainer.metrics import (
    EventCounts,
    PointCounts,
    event_counts,
    point_counts,
    pr_auc,
    pr_curve,
    predicted_events,
    roc_auc,
    roc_curve,
    threshold_sweep,
)


def mask(n: int, *runs: tuple[int, int]) -> np.ndarray:
    """Boolean mask with the inclusive ``runs`` set."""
    out = np.zeros(n, dtype=bool)
    for start, end in runs:
        out[start:end + 1] = True
    return out


# 20 rows; labels rows 4-8 and 10-12; predictions rows 3-5 (hits label 1) and 15-16 (hits nothing).
LABELS = [(4, 8), (10, 12)]
PRED = mask(20, (3, 5), (15, 16))


def test_event_counts_one_detected_one_missed_one_false_run() -> None:
    counts = event_counts(PRED, LABELS)
    assert counts == EventCounts(tp=1, fp=1, fn=1, precision=0.5, recall=0.5, f1=0.5)


def test_point_counts_same_example() -> None:
    # label rows: 4..8 (5) + 10..12 (3) = 8; predicted: 3,4,5,15,16 = 5.
    # tp = {4,5} = 2, fp = {3,15,16} = 3, fn = 8 - 2 = 6, tn = 20 - 11 = 9.
    counts = point_counts(PRED, mask(20, *LABELS))
    assert (counts.tp, counts.fp, counts.fn, counts.tn) == (2, 3, 6, 9)
    assert counts.precision == pytest.approx(2 / 5)
    assert counts.recall == pytest.approx(2 / 8)
    assert counts.f1 == pytest.approx(2 * 0.4 * 0.25 / (0.4 + 0.25))  # 0.3077


def test_label_detected_by_two_runs_counts_once() -> None:
    pred = mask(20, (4, 4), (7, 8))
    assert event_counts(pred, LABELS) == EventCounts(1, 0, 1, 1.0, 0.5, pytest.approx(2 / 3))


def test_one_run_spanning_two_labels_detects_both() -> None:
    pred = mask(20, (6, 11))
    counts = event_counts(pred, LABELS)
    assert (counts.tp, counts.fp, counts.fn) == (2, 0, 0)
    assert counts.f1 == 1.0


def test_run_touching_a_label_by_one_row_is_not_false_positive() -> None:
    pred = mask(20, (8, 9), (13, 19))  # 8 is in label 1; 13-19 touches nothing
    counts = event_counts(pred, LABELS)
    assert (counts.tp, counts.fp, counts.fn) == (1, 1, 1)


def test_labels_at_the_mask_edges() -> None:
    pred = mask(10, (0, 0), (9, 9))
    counts = event_counts(pred, [(0, 1), (9, 9)])
    assert (counts.tp, counts.fp, counts.fn) == (2, 0, 0)


def test_no_predictions_and_no_labels_give_zero_not_nan() -> None:
    none = np.zeros(20, dtype=bool)
    assert event_counts(none, LABELS) == EventCounts(0, 0, 2, 0.0, 0.0, 0.0)
    assert event_counts(PRED, []) == EventCounts(0, 2, 0, 0.0, 0.0, 0.0)
    assert point_counts(none, none) == PointCounts(0, 0, 0, 20, 0.0, 0.0, 0.0)


def test_label_range_outside_the_mask_is_ignored() -> None:
    counts = event_counts(PRED, [(4, 8), (30, 40)])
    assert (counts.tp, counts.fp, counts.fn) == (1, 1, 0)


def test_predicted_events() -> None:
    assert predicted_events(np.array([0, 1, 1, 0, 1], dtype=bool)) == [(1, 2), (4, 4)]
    assert predicted_events(np.ones(3, dtype=bool)) == [(0, 2)]
    assert predicted_events(np.zeros(4, dtype=bool)) == []
    assert predicted_events(PRED) == [(3, 5), (15, 16)]


def test_point_counts_rejects_shape_mismatch() -> None:
    with pytest.raises(ValueError):
        point_counts(np.zeros(3, bool), np.zeros(4, bool))


# --------------------------------------------------------------------------- AUCs


def test_roc_and_pr_auc_small_example() -> None:
    scores = np.array([0.1, 0.4, 0.35, 0.8])
    labels = np.array([0, 0, 1, 1], dtype=bool)
    # Pairs (pos, neg): 0.35>0.1 yes, 0.35>0.4 no, 0.8>0.1 yes, 0.8>0.4 yes -> 3/4.
    assert roc_auc(scores, labels) == pytest.approx(0.75)
    # Thresholds 0.8: P=1 R=1/2; 0.4: P=1/2 R=1/2; 0.35: P=2/3 R=1 -> AP = 1/2*1 + 1/2*2/3.
    assert pr_auc(scores, labels) == pytest.approx(0.5 + 1 / 3)


def test_ties_count_one_half() -> None:
    scores = np.array([0.5, 0.5, 0.2, 0.9])
    labels = np.array([1, 0, 0, 1], dtype=bool)
    # Pairs: (0.5,0.5) tie 1/2, (0.5,0.2) 1, (0.9,0.5) 1, (0.9,0.2) 1 -> 3.5/4.
    assert roc_auc(scores, labels) == pytest.approx(0.875)
    # 0.9: P=1 R=1/2; 0.5 (both tied rows at once): P=2/3 R=1 -> AP = 1/2 + 1/3.
    assert pr_auc(scores, labels) == pytest.approx(0.5 + 1 / 3)
    assert roc_auc(np.full(4, 0.3), labels) == pytest.approx(0.5)


def test_perfect_and_inverted_scores() -> None:
    labels = np.array([0, 0, 0, 1, 1], dtype=bool)
    scores = np.array([0.1, 0.2, 0.3, 0.7, 0.9])
    assert roc_auc(scores, labels) == 1.0
    assert pr_auc(scores, labels) == 1.0
    assert roc_auc(-scores, labels) == 0.0
    # Inverted: positives come last: P at R=1/2 is 1/4, at R=1 is 2/5.
    assert pr_auc(-scores, labels) == pytest.approx(0.5 * 0.25 + 0.5 * 0.4)


def test_nan_scores_are_ignored() -> None:
    scores = np.array([np.nan, np.nan, 0.1, 0.4, 0.35, 0.8])
    labels = np.array([1, 0, 0, 0, 1, 1], dtype=bool)
    assert roc_auc(scores, labels) == pytest.approx(0.75)
    assert pr_auc(scores, labels) == pytest.approx(0.5 + 1 / 3)


def test_single_class_auc_is_none() -> None:
    scores = np.array([0.1, 0.2, 0.3])
    assert roc_auc(scores, np.zeros(3, bool)) is None
    assert roc_auc(scores, np.ones(3, bool)) is None
    assert pr_auc(scores, np.zeros(3, bool)) is None
    assert pr_auc(scores, np.ones(3, bool)) == 1.0


def test_curves_points() -> None:
    scores = np.array([0.1, 0.4, 0.35, 0.8])
    labels = np.array([0, 0, 1, 1], dtype=bool)
    fpr, tpr, thr = roc_curve(scores, labels)
    np.testing.assert_allclose(fpr, [0, 0, 0.5, 0.5, 1])
    np.testing.assert_allclose(tpr, [0, 0.5, 0.5, 1, 1])
    assert thr[0] == np.inf and list(thr[1:]) == [0.8, 0.4, 0.35, 0.1]
    precision, recall, thr = pr_curve(scores, labels)
    np.testing.assert_allclose(precision, [1, 0.5, 2 / 3, 0.5])
    np.testing.assert_allclose(recall, [0.5, 0.5, 1, 1])


def test_aucs_agree_with_scikit_learn_on_random_data() -> None:
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(3)
    labels = rng.random(300) < 0.2
    scores = np.round(rng.normal(size=300) + labels, 1)  # rounding makes plenty of ties
    assert roc_auc(scores, labels) == pytest.approx(sk.roc_auc_score(labels, scores))
    assert pr_auc(scores, labels) == pytest.approx(sk.average_precision_score(labels, scores))


def test_threshold_sweep_matches_single_evaluations() -> None:
    scores = np.array([np.nan, 0.1, 0.9, 0.8, 0.2, 0.1, 0.7, 0.1])
    ranges = [(2, 3)]
    sweep = threshold_sweep(scores, ranges, np.array([0.5, 0.75]))
    # t=0.5: predicted rows 2,3,6 -> events tp=1 fp=1; points tp=2 fp=1 fn=0.
    assert sweep["event_f1"][0] == pytest.approx(2 / 3)
    assert sweep["point_precision"][0] == pytest.approx(2 / 3)
    assert sweep["point_recall"][0] == 1.0
    # t=0.75: rows 2,3 only -> everything perfect.
    assert sweep["event_f1"][1] == 1.0 and sweep["point_f1"][1] == 1.0
