"""Detection metrics: point-wise, event-wise (Telemanom/Orion rule) and AUCs.

numpy only, so every number can be checked by hand in the tests.

- Point-wise: each row is one decision; the usual confusion matrix.
- Event-wise: a labeled range (inclusive ``(start, end)`` indices into the
  mask) is a true positive when any predicted anomalous row overlaps it,
  counted once; a false negative otherwise. Each maximal run of predicted
  anomalous rows that overlaps no labeled range is one false positive.
- ROC-AUC is the Mann-Whitney probability that an anomalous row outscores a
  normal one (ties count one half); PR-AUC is average precision
  (``sum_k (R_k - R_{k-1}) * P_k`` over distinct score thresholds, high to
  low). Rows whose score is NaN (before the first window) are ignored.

Precision with no predictions, recall with no labels and F1 with P + R = 0 are
0.0 rather than NaN, so JSON stays plain numbers; AUCs of a single class are
None (undefined).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

Range = tuple[int, int]


@dataclass(frozen=True)
class PointCounts:
    tp: int
    fp: int
    fn: int
    tn: int
    precision: float
    recall: float
    f1: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class EventCounts:
    tp: int
    fp: int
    fn: int
    precision: float
    recall: float
    f1: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _ratio(num: float, den: float) -> float:
    return float(num) / float(den) if den > 0 else 0.0


def _prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    return precision, recall, _ratio(2 * precision * recall, precision + recall)


def point_counts(pred_mask: np.ndarray, label_mask: np.ndarray) -> PointCounts:
    """Row-wise confusion matrix and precision/recall/F1."""
    pred, label = _bool(pred_mask), _bool(label_mask)
    if pred.shape != label.shape:
        raise ValueError(f"pred_mask {pred.shape} and label_mask {label.shape} differ in shape")
    tp = int(np.sum(pred & label))
    fp = int(np.sum(pred & ~label))
    fn = int(np.sum(~pred & label))
    tn = int(np.sum(~pred & ~label))
    return PointCounts(tp, fp, fn, tn, *_prf(tp, fp, fn))


def predicted_events(pred_mask: np.ndarray) -> list[Range]:
    """Maximal runs of True as inclusive ``(start, end)`` index pairs."""
    starts, ends = _runs(_bool(pred_mask))
    return [(int(s), int(e)) for s, e in zip(starts, ends)]


def _runs(pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    edges = np.diff(np.concatenate(([0], pred.astype(np.int8), [0])))
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1


def event_counts(pred_mask: np.ndarray, label_ranges: Sequence[Range]) -> EventCounts:
    """Event-wise counts with the Telemanom/Orion overlap rule (see module doc)."""
    pred = _bool(pred_mask)
    n = len(pred)
    # Prefix sums answer "any predicted row inside [a, b]?" in O(1) per range.
    cum = np.concatenate(([0], np.cumsum(pred, dtype=np.int64)))
    label_mask = np.zeros(n, dtype=bool)
    tp = fn = 0
    for start, end in label_ranges:
        lo, hi = max(int(start), 0), min(int(end), n - 1)
        if lo > hi:
            continue  # entirely outside the mask: not evaluable here
        label_mask[lo:hi + 1] = True
        if cum[hi + 1] - cum[lo] > 0:
            tp += 1
        else:
            fn += 1
    lab_cum = np.concatenate(([0], np.cumsum(label_mask, dtype=np.int64)))
    starts, ends = _runs(pred)
    fp = int(np.sum(lab_cum[ends + 1] - lab_cum[starts] == 0))  # runs touching no labeled row
    return EventCounts(tp, fp, fn, *_prf(tp, fp, fn))


def _bool(mask: np.ndarray) -> np.ndarray:
    arr = np.asarray(mask)
    if arr.ndim != 1:
        raise ValueError(f"expected a 1-D mask, got shape {arr.shape}")
    return arr.astype(bool)


def _valid(scores: np.ndarray, label_mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64)
    y = _bool(label_mask)
    if s.shape != y.shape:
        raise ValueError(f"scores {s.shape} and label_mask {y.shape} differ in shape")
    keep = np.isfinite(s)
    return s[keep], y[keep]


def _cumulative(scores: np.ndarray, label_mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """TP and FP counts when predicting ``score >= t`` for each distinct t, high to low."""
    s, y = _valid(scores, label_mask)
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    # Last index of each block of equal scores: tied rows flip together.
    last = np.flatnonzero(np.diff(s, append=-np.inf) != 0) if len(s) else np.empty(0, dtype=np.int64)
    tps = np.cumsum(y)[last] if len(s) else np.empty(0)
    fps = (last + 1) - tps
    return tps.astype(np.float64), fps.astype(np.float64), s[last]


def roc_curve(scores: np.ndarray, label_mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(fpr, tpr, thresholds)`` starting at (0, 0) with threshold +inf."""
    tps, fps, thr = _cumulative(scores, label_mask)
    pos, neg = (tps[-1], fps[-1]) if len(tps) else (0.0, 0.0)
    tpr = np.concatenate(([0.0], tps / pos if pos else np.zeros_like(tps)))
    fpr = np.concatenate(([0.0], fps / neg if neg else np.zeros_like(fps)))
    return fpr, tpr, np.concatenate(([np.inf], thr))


def roc_auc(scores: np.ndarray, label_mask: np.ndarray) -> float | None:
    """Area under the ROC curve (trapezoids = Mann-Whitney with half ties); None if one class."""
    s, y = _valid(scores, label_mask)
    if y.all() or not y.any():
        return None
    fpr, tpr, _ = roc_curve(s, y)
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))


def pr_curve(scores: np.ndarray, label_mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(precision, recall, thresholds)`` for each distinct threshold, high to low."""
    tps, fps, thr = _cumulative(scores, label_mask)
    pos = tps[-1] if len(tps) else 0.0
    precision = tps / np.maximum(tps + fps, 1.0)
    recall = tps / pos if pos else np.zeros_like(tps)
    return precision, recall, thr


def pr_auc(scores: np.ndarray, label_mask: np.ndarray) -> float | None:
    """Average precision; None without anomalous (or without any scored) rows."""
    s, y = _valid(scores, label_mask)
    if not y.any():
        return None
    precision, recall, _ = pr_curve(s, y)
    return float(np.sum(np.diff(np.concatenate(([0.0], recall))) * precision))


def threshold_sweep(scores: np.ndarray, label_ranges: Sequence[Range], thresholds: np.ndarray) -> dict[str, np.ndarray]:
    """Point and event precision/recall/F1 for each threshold (``score > t`` is anomalous).

    NaN scores (rows before the first window) are never anomalous.
    """
    s = np.asarray(scores, dtype=np.float64)
    label_mask = np.zeros(len(s), dtype=bool)
    for start, end in label_ranges:
        label_mask[max(int(start), 0):int(end) + 1] = True
    keys = ("point_precision", "point_recall", "point_f1", "event_precision", "event_recall", "event_f1")
    out = {k: np.zeros(len(thresholds)) for k in keys}
    for i, t in enumerate(np.asarray(thresholds, dtype=np.float64)):
        pred = np.nan_to_num(s, nan=-np.inf) > t
        p, e = point_counts(pred, label_mask), event_counts(pred, label_ranges)
        for kind, c in (("point", p), ("event", e)):
            out[f"{kind}_precision"][i] = c.precision
            out[f"{kind}_recall"][i] = c.recall
            out[f"{kind}_f1"][i] = c.f1
    return out
