"""IsolationForest baseline: reproducible from its seed, higher scores on anomalies."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("sklearn")

from edge_agent.core import Scaler, WindowSpec  # noqa: E402
from trainer.baseline import IsolationForestBaseline, baseline_from_run  # noqa: E402
from trainer.rundir import RUN_FORMAT, RUN_JSON, TRAIN_ROWS_FILE, read_run  # noqa: E402

SPEC = WindowSpec(16, 2)


def _rows(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n, dtype=np.float64)[:, None]
    return np.hstack([np.sin(2 * np.pi * t / 20), np.cos(2 * np.pi * t / 33)]) + rng.normal(0, 0.05, (n, 2))


def _fit(rows: np.ndarray, seed: int) -> IsolationForestBaseline:
    return IsolationForestBaseline(n_estimators=50).fit(rows, Scaler.fit(rows), SPEC, seed)


def test_same_seed_same_scores_other_seed_differs() -> None:
    rows = _rows(400)
    test = _rows(200, seed=1)
    a, b, c = _fit(rows, 7), _fit(rows, 7), _fit(rows, 8)
    assert np.array_equal(a.window_scores(test), b.window_scores(test))
    assert not np.allclose(a.window_scores(test), c.window_scores(test))
    assert len(a.window_scores(test)) == SPEC.count(200)


def test_anomalous_windows_score_higher() -> None:
    rows = _rows(400)
    base = _fit(rows, 0)
    test = _rows(200, seed=1)
    test[100:130] += 3.0  # a level shift far outside the training range
    scores = base.window_scores(test)
    ends = np.arange(len(scores)) * SPEC.hop + SPEC.window - 1
    starts = ends - SPEC.window + 1
    inside = (starts >= 100) & (ends < 130)  # windows wholly in the shifted stretch
    outside = (ends < 100) | (starts >= 130)  # windows that do not touch it
    assert inside.any()
    assert scores[inside].min() > scores[outside].max()


def test_smoothing_is_applied_to_window_scores() -> None:
    rows = _rows(400)
    base = _fit(rows, 0)
    base.smoothing_alpha = 0.5
    raw = base.raw_window_scores(rows[:100])
    smoothed = base.window_scores(rows[:100])
    assert smoothed[0] == raw[0]
    assert smoothed[1] == pytest.approx(0.5 * raw[1] + 0.5 * raw[0])


def test_baseline_from_run_refits_identically(tmp_path) -> None:
    rows = _rows(500)
    fit_rows = rows[:400]  # validation fraction 0.2 -> last 100 rows held out
    scaler = Scaler.fit(fit_rows)
    original = IsolationForestBaseline(n_estimators=50).fit(fit_rows, scaler, SPEC, 3)
    original.threshold = 0.5
    meta = {"format": RUN_FORMAT, "features": ["a", "b"], "window": SPEC.window, "hop": SPEC.hop,
            "scaler": scaler.to_dict(), "score": {"function": "mse", "weights": None},
            "smoothing": {"alpha": None}, "threshold": {"value": 1.0, "strategy": "max", "params": {}},
            "model": {"kind": "lstm"}, "training": {"validation_fraction": 0.2},
            "baseline": original.to_dict(), "seed": 3}
    (tmp_path / RUN_JSON).write_text(json.dumps(meta))
    np.save(tmp_path / TRAIN_ROWS_FILE, rows, allow_pickle=False)
    refit = baseline_from_run(read_run(tmp_path))
    test = _rows(120, seed=5)
    assert refit.seed == 3 and refit.threshold == 0.5
    assert np.array_equal(refit.window_scores(test), original.window_scores(test))
