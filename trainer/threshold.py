"""Turn anomaly scores into one alarm threshold (an alarm is ``score > threshold``).

Strategies (``--threshold``):

- ``pot`` (default): calibrated to a false-alarm budget (``--false-alarms``)
  by a peaks-over-threshold fit of the held-out normal windows' scores; see
  :mod:`trainer.calibrate` (computed there, not by :func:`normal_threshold`).

- ``mean+k*std`` (default, ``k`` from ``--k``; ``mean+3std`` / ``mean+2.5*std``
  carry their own k): mean plus k standard deviations of the scores of
  held-out *normal* windows.
- ``percentile:P``: the P-th percentile (0 < P <= 100) of those scores.
- ``max``: the largest of those scores (no held-out normal window alarms).
- ``best-f1``: needs labeled validation rows. Every distinct row score is a
  candidate; the one with the highest *event-wise* F1 (Telemanom rule,
  :func:`trainer.metrics.event_counts`) wins. Event F1 alone has degenerate
  maxima: a threshold below every score makes one huge event that overlaps
  every label (F1 = 1 with one label). Ties are therefore broken by the
  *point-wise* F1, which punishes such sprawling events, and any remaining tie
  by the middle candidate (away from the edges, where unseen data flips).
- ``pr-balance``: needs labeled rows. *Point-wise* precision equals recall
  exactly when as many rows are predicted anomalous as are labeled anomalous
  (both are ``tp / n``), so the threshold sits halfway between the n-th and
  the (n+1)-th highest row score, n = number of labeled rows.

The normal-data strategies are computed on held-out windows, never on the
windows the model was fitted on: fitted windows are reconstructed too well and
would give a threshold that raises false alarms on new normal data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edge_agent.errors import VigilInputError

NORMAL_STRATEGIES = ("pot", "mean+k*std", "percentile", "max")
LABELED_STRATEGIES = ("best-f1", "pr-balance")
STRATEGY_HELP = "pot | mean+k*std | percentile:P | max | best-f1 | pr-balance"
MAX_CANDIDATES = 2000  # best-f1 evaluates event F1 once per candidate

_MEAN_STD = re.compile(r"mean\s*\+\s*(?:(k|[0-9]*\.?[0-9]+)\s*\*?\s*)?(?:std|sd|sigma)")


@dataclass(frozen=True)
class ThresholdStrategy:
    """A parsed ``--threshold`` value."""

    name: str
    params: dict[str, float] = field(default_factory=dict)

    @property
    def needs_labels(self) -> bool:
        return self.name in LABELED_STRATEGIES

    @property
    def text(self) -> str:
        if self.name == "percentile":
            return f"percentile:{self.params['p']:g}"
        return self.name


def parse_strategy(text: str, k: float = 3.0) -> ThresholdStrategy:
    """Parse ``--threshold`` text; a bad value is a one-line input error."""
    raw = (text or "").strip().lower().replace(" ", "")
    match = _MEAN_STD.fullmatch(raw)
    if match:
        given = match.group(1)
        value = k if given in (None, "k") else float(given)
        if not np.isfinite(value) or value < 0:
            raise VigilInputError(f"k must be a non-negative number, got {value}", key="threshold")
        return ThresholdStrategy("mean+k*std", {"k": float(value)})
    if raw.startswith("percentile:") or raw.startswith("p:"):
        p = _percentile(raw.split(":", 1)[1], text)
        return ThresholdStrategy("percentile", {"p": p})
    if raw in ("pot", "max", "best-f1", "pr-balance"):
        return ThresholdStrategy(raw)
    raise VigilInputError(f"unknown threshold strategy {text!r}; use {STRATEGY_HELP}", key="threshold")


def _percentile(value: str, text: str) -> float:
    try:
        p = float(value)
    except ValueError:
        p = float("nan")
    if not (0.0 < p <= 100.0):
        raise VigilInputError(f"percentile in {text!r} must be a number in (0, 100]", key="threshold")
    return p


def normal_threshold(scores: np.ndarray, strategy: ThresholdStrategy) -> float:
    """Threshold from scores of held-out normal windows (NaN scores ignored)."""
    s = _finite(scores)
    if s.size == 0:
        raise VigilInputError("no held-out window scores to set a threshold from "
                              "(use more training rows or a larger --validation-fraction)", key="threshold")
    if strategy.name == "mean+k*std":
        return float(s.mean() + strategy.params["k"] * s.std())
    if strategy.name == "percentile":
        return float(np.percentile(s, strategy.params["p"]))
    if strategy.name == "max":
        return float(s.max())
    if strategy.name == "pot":
        raise ValueError("pot needs a false-alarm budget; use trainer.calibrate.calibrate_threshold()")
    raise ValueError(f"{strategy.name} needs labeled data; use labeled_threshold()")


def labeled_threshold(
    row_scores: np.ndarray, label_ranges: list[tuple[int, int]], strategy: ThresholdStrategy
) -> tuple[float, dict[str, Any]]:
    """Threshold from per-row scores and inclusive label ranges (indices into ``row_scores``).

    Returns the value and what was achieved on those rows (for run.json).
    """
    scores = np.asarray(row_scores, dtype=np.float64)
    if not label_ranges:
        raise VigilInputError(f"--threshold {strategy.name} needs at least one labeled anomaly "
                              "inside the --label-rows", key="labels")
    if strategy.name == "best-f1":
        return best_f1_threshold(scores, label_ranges)
    if strategy.name == "pr-balance":
        return pr_balance_threshold(scores, label_ranges)
    raise ValueError(f"{strategy.name} is not a labeled strategy")


def candidate_thresholds(scores: np.ndarray, limit: int = MAX_CANDIDATES) -> np.ndarray:
    """Midpoints between consecutive distinct scores, plus one below the lowest.

    With ``score > t`` as the alarm rule every distinct outcome is reached by
    one of these. Long score lists are thinned to ``limit`` evenly spaced
    quantiles (the search is then approximate but bounded in time).
    """
    s = np.unique(_finite(scores))
    if s.size == 0:
        return s
    if s.size > limit:
        s = np.unique(np.quantile(s, np.linspace(0.0, 1.0, limit)))
    below = s[0] - max(abs(s[0]) * 1e-6, 1e-12)
    return np.concatenate([[below], (s[:-1] + s[1:]) / 2.0, [s[-1]]])


def best_f1_threshold(row_scores: np.ndarray, label_ranges: list[tuple[int, int]]) -> tuple[float, dict[str, Any]]:
    """Event-wise F1 maximiser (see module doc for the tie rule)."""
    from trainer.metrics import event_counts  # lazy: written alongside, imported only when used

    scores = np.asarray(row_scores, dtype=np.float64)
    valid = np.isfinite(scores)
    candidates = candidate_thresholds(scores)
    labels = _label_mask(label_ranges, len(scores)) & valid
    f1 = np.empty(len(candidates))
    point_f1 = np.empty(len(candidates))
    for i, t in enumerate(candidates):
        pred = valid & (np.where(valid, scores, -np.inf) > t)
        f1[i] = event_counts(pred, label_ranges).f1
        tp = int((pred & labels).sum())
        point_f1[i] = 2 * tp / max(int(pred.sum()) + int(labels.sum()), 1)
    best = np.flatnonzero(f1 >= f1.max() - 1e-12)
    best = best[point_f1[best] >= point_f1[best].max() - 1e-12]
    choice = float(candidates[best[len(best) // 2]])
    counts = event_counts(valid & (np.where(valid, scores, -np.inf) > choice), label_ranges)
    return choice, {"event_f1": float(counts.f1), "event_precision": float(counts.precision),
                    "event_recall": float(counts.recall), "n_candidates": int(len(candidates))}


def pr_balance_threshold(row_scores: np.ndarray, label_ranges: list[tuple[int, int]]) -> tuple[float, dict[str, Any]]:
    """Point-wise precision == recall: as many rows above the threshold as labeled rows."""
    scores = np.asarray(row_scores, dtype=np.float64)
    valid = np.isfinite(scores)
    labels = _label_mask(label_ranges, len(scores)) & valid  # unscored rows can never be predicted
    n = int(labels.sum())
    ordered = np.sort(scores[valid])[::-1]
    if n == 0 or n >= len(ordered):
        raise VigilInputError("pr-balance needs scored rows both inside and outside the labeled ranges",
                              key="labels")
    value = float((ordered[n - 1] + ordered[n]) / 2.0)
    pred = valid & (np.where(valid, scores, -np.inf) > value)
    tp = int((pred & labels).sum())
    precision = tp / max(int(pred.sum()), 1)
    return value, {"point_precision": precision, "point_recall": tp / n}


def error_stats(scores: np.ndarray) -> dict[str, float]:
    """Summary of held-out normal window scores for run.json."""
    s = _finite(scores)
    if s.size == 0:
        return {key: float("nan") for key in ("mean", "std", "q50", "q90", "q99", "max")}
    q50, q90, q99 = np.percentile(s, [50, 90, 99])
    return {"mean": float(s.mean()), "std": float(s.std()), "q50": float(q50), "q90": float(q90),
            "q99": float(q99), "max": float(s.max())}


def _label_mask(label_ranges: list[tuple[int, int]], n: int) -> np.ndarray:
    mask = np.zeros(n, dtype=bool)
    for start, end in label_ranges:
        mask[max(int(start), 0):int(end) + 1] = True
    return mask


def _finite(scores: np.ndarray) -> np.ndarray:
    s = np.asarray(scores, dtype=np.float64).ravel()
    return s[np.isfinite(s)]
