"""Replaying one model's window scores under several score modes (``benchmarks.quality --score-modes``).

Each model scores the data once; the recorded window scores (with their step
errors) are replayed through the pipeline for every mode, so the modes are
compared on identical numbers. ``CachedScorer`` also serves the quality
run's ``float_windows.npz`` cache and ``benchmarks.detection_variants``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.datasets import Series

#: ``--score-modes``: what the published events are decided on (``detection.score``), replayed over the
#: same window scores: the window mean (today), per-row scores with the max or the mean of the rows a
#: window finalizes, and per-row scores finalized without waiting for later windows (delay 0).
SCORE_VARIANTS: dict[str, dict[str, Any]] = {
    "window": {"mode": "window"},
    "row": {"mode": "row"},
    "row-mean": {"mode": "row", "reduce": "mean"},
    "row-delay0": {"mode": "row", "delay_rows": 0},
    "row-cal": {"mode": "row"},  # with the static floor re-set on held-out row decisions (CALIBRATED)
}
#: Variants whose static threshold is calibrated again, label-free, the trainer's way (the run's
#: strategy and false-alarm budget) on the held-out rows' decision scores of that score mode.
CALIBRATED = ("row-cal",)

def published_modes(series: Series, run: Any, bundle_path: Path, ranges: list[tuple[int, int]], base: Path,
                    source: Path, score_modes: list[str]) -> dict[str, Any]:
    """``float@<mode>`` / ``auto@<mode>`` for each score mode, and ``float`` / ``auto`` as the bundle ships.

    Each model scores the data once (the float model's windows, with their step errors, are cached in
    ``float_steps.npz``); the other replays reuse those window scores, so the modes are compared on
    identical numbers.
    """
    from edge_agent.bundle import load_bundle
    from edge_agent.detection.settings import ScoreSettings
    from edge_agent.pipeline import PipelineSettings
    from edge_agent.runtime import Scorer
    from trainer.pipeline_view import KerasWindowScorer, bundle_view
    from trainer.published import published_events

    cache = base / "float_steps.npz"
    float_scorer: Any = CachedScorer.load(cache) if cache.is_file() else RecordingScorer(KerasWindowScorer(run))
    bundle = load_bundle(bundle_path)
    floors = {m: heldout_threshold(run, ScoreSettings(**SCORE_VARIANTS[m])) for m in score_modes if m in CALIBRATED}
    out: dict[str, Any] = {}
    for key, view, first in (("float", bundle_view(run), float_scorer),
                             ("auto", bundle, RecordingScorer(PerWindow(Scorer(bundle))))):
        scorer = first
        for mode in [None, *score_modes]:
            settings = None if mode is None else PipelineSettings.for_bundle(
                view, score=ScoreSettings(**SCORE_VARIANTS[mode]))
            judged = view if mode not in floors else dataclasses.replace(view, threshold=floors[mode])
            pub = published_events(judged, series.path, ranges, rows=series.test_rows, columns=run.features,
                                   scorer=scorer, settings=settings)
            out[key if mode is None else f"{key}@{mode}"] = _published_entry(pub)
            if isinstance(scorer, RecordingScorer):
                if key == "float":
                    scorer.save(cache)
                scorer = scorer.replayer()
            else:
                scorer = scorer.replayer()
    return out


def heldout_threshold(run: Any, score: Any) -> float:
    """The run's static threshold rule applied to its held-out rows' decision scores under ``score``."""
    from edge_agent.pipeline import PipelineSettings
    from trainer.calibrate import calibrate_threshold, parse_false_alarms
    from trainer.pipeline_view import KerasWindowScorer, bundle_view
    from trainer.published import decision_scores
    from trainer.threshold import normal_threshold, parse_strategy

    view = bundle_view(run)
    _, heldout = run.split_train_rows()
    rate = run.meta.get("sampling_rate_hz")
    scores = decision_scores(view, heldout, KerasWindowScorer(run), PipelineSettings.for_bundle(view, score=score),
                             rate)
    meta = run.meta["threshold"]
    strategy = parse_strategy(meta["strategy"], meta.get("k", 3.0))
    if strategy.name != "pot":
        return float(normal_threshold(scores, strategy))
    budget = parse_false_alarms(str((meta.get("params") or {}).get("false_alarms", "auto")))
    value, _, _ = calibrate_threshold(scores, budget, rate, run.spec.hop)
    return float(value)


class PerWindow:
    """``score_many`` over a scorer that scores one window at a time (the device's TFLite :class:`Scorer`)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def score_many(self, windows: np.ndarray) -> list[Any]:
        return [self.inner.score(w) for w in windows]


class RecordingScorer:
    """Scores through ``inner`` and remembers every window score (and step errors), in order."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.scores: list[float] = []
        self.errors: list[np.ndarray] = []
        self.steps: list[np.ndarray] = []

    def score_many(self, windows: np.ndarray) -> list[Any]:
        results = self.inner.score_many(windows)
        self.scores.extend(r.score for r in results)
        self.errors.extend(r.feature_errors for r in results)
        self.steps.extend(r.step_errors for r in results if r.step_errors is not None)
        return results

    def arrays(self) -> dict[str, np.ndarray]:
        out = {"scores": np.asarray(self.scores, dtype=np.float64), "errors": np.asarray(self.errors, dtype=np.float64)}
        if self.steps and len(self.steps) == len(self.scores):
            out["steps"] = np.asarray(self.steps, dtype=np.float64)
        return out

    def save(self, path: Path) -> None:
        np.savez(path, **self.arrays())

    def replayer(self) -> CachedScorer:
        a = self.arrays()
        return CachedScorer(a["scores"], a["errors"], a.get("steps"))


class CachedScorer:
    """Replays recorded window scores in order (the same data gives the same windows in the same order)."""

    def __init__(self, scores: np.ndarray, errors: np.ndarray, steps: np.ndarray | None = None) -> None:
        self.scores, self.errors, self.steps, self.next = scores, errors, steps, 0

    @classmethod
    def load(cls, path: Path) -> CachedScorer:
        with np.load(path, allow_pickle=False) as data:
            return cls(data["scores"], data["errors"], data["steps"] if "steps" in data.files else None)

    def replayer(self) -> CachedScorer:
        return CachedScorer(self.scores, self.errors, self.steps)

    def score_many(self, windows: np.ndarray) -> list[Any]:
        from edge_agent.core.scoring import WindowScore

        a, b = self.next, self.next + len(windows)
        if b > len(self.scores):
            raise RuntimeError("cached scores do not match the windows (delete float_windows.npz)")
        self.next = b
        steps = [None] * (b - a) if self.steps is None else list(self.steps[a:b])
        return [WindowScore(float(s), e, st)
                for s, e, st in zip(self.scores[a:b], self.errors[a:b], steps, strict=True)]


def _published_entry(pub: dict[str, Any]) -> dict[str, Any]:
    e = pub["event"]
    return {"tp": e["tp"], "fp": e["fp"], "fn": e["fn"], "precision": e["precision"], "recall": e["recall"],
            "f1": e["f1"], "pr_auc": None, "threshold": pub["threshold"], "flagged_rows": pub["flagged_rows"],
            "events": pub["events"], "sensor_faults": len(pub["sensor_faults"])}
