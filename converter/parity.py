"""Parity: does the bundle score windows like the trained Keras model?

The Keras side is ``trainer.keras_scoring`` (the trainer's own scores); the
bundle side is ``edge_agent.runtime.Scorer``, the code the device runs. On
every window set we compare the raw (unsmoothed) window scores: Spearman rank
correlation, max and mean absolute difference, and the share of windows whose
above/below-threshold decision differs. The bundle also scores the windows a
second time in reverse order; the two passes must agree bit for bit, which
proves no state leaks from one window into the next.

Rank correlation says nothing about near-tied scores: a model whose held-out
scores are equal to seven digits ranks them by rounding noise, so even the
float32 bundle gets Spearman 0. Keras scores closer than ``NEAR_TIE_REL_ERROR``
times their mean are therefore ties: the rank test compares the order of the
tie groups (the bundle's scores averaged within each group), and a set that is
one single group (near-constant scores) is judged on the largest relative
error of its scores instead (``judged_on`` says which). The decision-flip and
order checks apply either way.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from converter.quantize import ParityLimits
from converter.windows import WindowSet
from edge_agent.core import Scaler
from edge_agent.runtime import Scorer
from trainer.keras_scoring import keras_window_scores

#: Keras scores closer than this times their mean are ties for the rank test; a near-constant set
#: passes when no bundle score is off by more than this times the mean.
NEAR_TIE_REL_ERROR = 1e-3
#: A Keras score within this share of the threshold is a tie with it: which side the bundle puts it on
#: is rounding, not a different decision. It matters when the threshold *is* a held-out score (the
#: largest of a few held-out windows): float32 TFLite then "flips" that window in ~half the runs, and
#: with the minimum of 8 held-out windows one such flip is 12.5% and refused every mode.
DECISION_TIE_REL = 1e-6


@dataclass
class Reference:
    """A window set and the Keras model's raw scores for it."""

    windows: WindowSet
    keras_scores: np.ndarray


@dataclass
class SetParity:
    name: str
    n_windows: int
    spearman: float
    max_abs_diff: float
    mean_abs_diff: float
    max_rel_diff: float  # max abs diff / mean Keras score
    flipped: int
    flipped_share: float
    order_identical: bool
    passed: bool
    reasons: list[str] = field(default_factory=list)
    judged_on: str = "spearman"  # "spearman, near-ties merged" / "relative error": see the module docstring


@dataclass
class ParityResult:
    mode: str
    limits: ParityLimits
    sets: list[SetParity]

    @property
    def passed(self) -> bool:
        return all(s.passed for s in self.sets)

    @property
    def reasons(self) -> list[str]:
        return [f"{s.name}: {r}" for s in self.sets for r in s.reasons]

    def worst(self) -> dict[str, float]:
        """The figures of the worst set, for the one-row-per-mode table."""
        return {
            "spearman": min(s.spearman for s in self.sets),
            "max_abs_diff": max(s.max_abs_diff for s in self.sets),
            "mean_abs_diff": max(s.mean_abs_diff for s in self.sets),
            "flipped_share": max(s.flipped_share for s in self.sets),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "passed": self.passed,
            "limits": self.limits.to_dict(),
            "sets": [asdict(s) for s in self.sets],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ParityResult:
        """Inverse of :meth:`to_dict` (the check runs in a worker process and reports JSON)."""
        limits = ParityLimits(float(data["limits"]["min_spearman"]), float(data["limits"]["max_flipped"]))
        return cls(mode=str(data["mode"]), limits=limits, sets=[SetParity(**s) for s in data["sets"]])


def keras_reference(model: Any, windows: WindowSet, scaler: Scaler, fn: str, weights: list[float] | None) -> Reference:
    scaled = scaler.transform(windows.raw)
    scores, _ = keras_window_scores(model, scaled, fn, weights)
    return Reference(windows=windows, keras_scores=np.asarray(scores, np.float64))


def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks with ties sharing their average rank (as Spearman's rho needs)."""
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    average = (ends - counts + ends - 1) / 2.0
    return average[inverse.ravel()]


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation; 1.0 when both sides are constant."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if len(a) < 2:
        return 1.0 if np.array_equal(a, b) else 0.0
    ra, rb = _ranks(a), _ranks(b)
    sa, sb = ra.std(), rb.std()
    if sa == 0 or sb == 0:
        return 1.0 if sa == sb else 0.0
    return float(np.mean((ra - ra.mean()) * (rb - rb.mean())) / (sa * sb))


def tie_tolerant_spearman(keras: np.ndarray, bundle: np.ndarray) -> tuple[float, str]:
    """Spearman over the tie groups of near-equal Keras scores, and how the set is to be judged.

    Sorted Keras scores less than ``NEAR_TIE_REL_ERROR * mean|keras|`` apart
    chain into one group; the bundle's scores are averaged within each group
    so the order inside a near-tie does not count. One group only: the
    scores are near-constant, the rank says nothing ("relative error").
    """
    keras = np.asarray(keras, np.float64)
    bundle = np.asarray(bundle, np.float64)
    scale = float(np.mean(np.abs(keras))) if len(keras) else 0.0
    if len(keras) < 2 or scale == 0:
        return spearman(keras, bundle), "spearman"
    order = np.argsort(keras, kind="stable")
    steps = np.diff(keras[order]) > NEAR_TIE_REL_ERROR * scale
    group_sorted = np.concatenate([[0], np.cumsum(steps)])
    if group_sorted[-1] == len(keras) - 1:  # no near-ties: the plain rank test
        return spearman(keras, bundle), "spearman"
    if group_sorted[-1] == 0:
        return spearman(keras, bundle), "relative error"
    group = np.empty(len(keras), dtype=np.int64)
    group[order] = group_sorted
    averaged = (np.bincount(group, weights=bundle) / np.bincount(group))[group]
    return spearman(group.astype(np.float64), averaged), "spearman, near-ties merged"


def scorer_scores(scorer: Scorer, raw: np.ndarray, order: np.ndarray | None = None) -> np.ndarray:
    """Scores of ``raw`` windows scored one by one in ``order`` (returned in input order)."""
    order = np.arange(len(raw)) if order is None else order
    out = np.empty(len(raw), dtype=np.float64)
    for i in order:
        out[i] = scorer.score(raw[i]).score
    return out


def count_flips(keras: np.ndarray, bundle: np.ndarray, threshold: float) -> int:
    """Windows the bundle puts on the other side of ``threshold`` than Keras, ties with it excepted."""
    keras = np.asarray(keras, np.float64)
    bundle = np.asarray(bundle, np.float64)
    decided = np.abs(keras - threshold) > DECISION_TIE_REL * max(abs(float(threshold)), np.finfo(np.float64).tiny)
    return int(np.count_nonzero(decided & ((keras > threshold) != (bundle > threshold))))


def compare(
    name: str, keras: np.ndarray, bundle: np.ndarray, bundle_reversed: np.ndarray, threshold: float,
    limits: ParityLimits,
) -> SetParity:
    """Parity figures of one window set and whether they meet ``limits``."""
    reasons: list[str] = []
    finite = bool(np.isfinite(bundle).all())
    diff = np.abs(keras - bundle) if finite else np.full(len(keras), np.inf)
    flips = count_flips(keras, bundle, threshold)
    share = flips / len(keras) if len(keras) else 0.0
    rho, judged_on = tie_tolerant_spearman(keras, bundle) if finite else (float("nan"), "spearman")
    identical = bool(np.array_equal(bundle, bundle_reversed))
    mean_score = float(np.mean(np.abs(keras))) if len(keras) else 0.0
    rel_error = float(diff.max() / mean_score) if len(diff) and mean_score > 0 else 0.0
    if not finite:
        reasons.append("bundle produced non-finite scores")
    elif judged_on == "relative error":
        if rel_error > NEAR_TIE_REL_ERROR:
            reasons.append(f"near-constant scores off by {rel_error:.2e} of their mean > {NEAR_TIE_REL_ERROR:g}")
    elif rho < limits.min_spearman:
        reasons.append(f"spearman {rho:.5f} < {limits.min_spearman}")
    if share > limits.max_flipped:
        reasons.append(f"{share:.2%} decisions flipped > {limits.max_flipped:.2%}")
    if not identical:
        reasons.append("scores depend on scoring order (state leaks between windows)")
    return SetParity(
        name=name,
        n_windows=int(len(keras)),
        spearman=rho,
        max_abs_diff=float(diff.max()) if len(diff) else 0.0,
        mean_abs_diff=float(diff.mean()) if len(diff) else 0.0,
        max_rel_diff=rel_error,
        flipped=flips,
        flipped_share=share,
        order_identical=identical,
        passed=not reasons,
        reasons=reasons,
        judged_on=judged_on,
    )


def check_parity(
    scorer: Scorer, references: list[Reference], threshold: float, limits: ParityLimits, mode: str
) -> ParityResult:
    """Score every reference set in two orders through ``scorer`` and compare."""
    sets = []
    for ref in references:
        raw = ref.windows.raw
        forward = scorer_scores(scorer, raw)
        backward = scorer_scores(scorer, raw, np.arange(len(raw))[::-1])
        sets.append(compare(ref.windows.name, ref.keras_scores, forward, backward, threshold, limits))
    return ParityResult(mode=mode, limits=limits, sets=sets)
