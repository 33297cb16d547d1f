"""IsolationForest baseline on the autoencoder's own normal windows.

Users compare the autoencoder with it (``vigil evaluate`` reports both), so it
sees exactly what the autoencoder sees: the same fitted rows, the same scaler,
the same windows (flattened to ``window * features`` numbers), and its
threshold comes from the same held-out normal windows with the same strategy.
For the labeled strategies (best-f1, pr-balance) it gets the same labeled
procedure on the same labeled rows, so neither side is favoured.

scikit-learn models cannot be stored without pickle, so a run keeps only the
training rows, the seed and the parameters; :func:`baseline_from_run` refits
(IsolationForest with a fixed ``random_state`` is deterministic).

:meth:`IsolationForestBaseline.window_scores` returns the scores that are
compared with ``.threshold`` (``score > threshold`` alarms): negated
``score_samples`` (higher = more anomalous), EWMA-smoothed with the run's
smoothing alpha when it has one, like the autoencoder's scores.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from edge_agent.core import Scaler, WindowSpec, ewma, sliding_windows

if TYPE_CHECKING:
    from trainer.rundir import RunInfo

DEFAULT_ESTIMATORS = 100
MAX_FIT_WINDOWS = 20000  # consecutive windows overlap heavily; more adds time, not information


class IsolationForestBaseline:
    """IsolationForest over flattened, scaled windows."""

    kind = "isolation_forest"

    def __init__(self, n_estimators: int = DEFAULT_ESTIMATORS, max_samples: int | str = "auto",
                 smoothing_alpha: float | None = None) -> None:
        self.n_estimators = int(n_estimators)
        self.max_samples = max_samples
        self.smoothing_alpha = smoothing_alpha
        self.seed: int | None = None
        self.threshold: float | None = None
        self.threshold_strategy: str | None = None
        self.scaler: Scaler | None = None
        self.spec: WindowSpec | None = None
        self._forest: Any = None

    def fit(self, train_rows: np.ndarray, scaler: Scaler, spec: WindowSpec, seed: int) -> IsolationForestBaseline:
        """Fit on the windows of ``train_rows`` (the rows the autoencoder was fitted on)."""
        from sklearn.ensemble import IsolationForest

        self.scaler, self.spec, self.seed = scaler, spec, int(seed)
        flat = self._flat_windows(train_rows)
        if len(flat) > MAX_FIT_WINDOWS:
            flat = flat[np.linspace(0, len(flat) - 1, MAX_FIT_WINDOWS).round().astype(np.int64)]
        self._forest = IsolationForest(n_estimators=self.n_estimators, max_samples=self.max_samples,
                                       random_state=self.seed)
        self._forest.fit(flat)
        return self

    def raw_window_scores(self, values: np.ndarray) -> np.ndarray:
        """Unsmoothed score per complete window of raw rows ``values``."""
        if self._forest is None:
            raise RuntimeError("baseline is not fitted")
        flat = self._flat_windows(values)
        if len(flat) == 0:
            return np.empty(0, dtype=np.float64)
        return -self._forest.score_samples(flat).astype(np.float64)

    def window_scores(self, values: np.ndarray) -> np.ndarray:
        """Score per complete window of raw rows (higher = more anomalous), smoothed like the AE's."""
        return ewma(self.raw_window_scores(values), self.smoothing_alpha)

    def to_dict(self) -> dict[str, Any]:
        """The run.json ``baseline`` section."""
        return {"kind": self.kind, "n_estimators": self.n_estimators, "max_samples": self.max_samples,
                "seed": self.seed, "input": "flattened scaled windows of the fitted rows",
                "smoothing_alpha": self.smoothing_alpha, "threshold": self.threshold,
                "threshold_strategy": self.threshold_strategy}

    def _flat_windows(self, values: np.ndarray) -> np.ndarray:
        assert self.scaler is not None and self.spec is not None
        windows = sliding_windows(self.scaler.transform(values), self.spec)
        return np.ascontiguousarray(windows, dtype=np.float32).reshape(len(windows), -1)


def baseline_from_run(run: RunInfo) -> IsolationForestBaseline:
    """Refit the run's baseline from ``train_rows.npy`` with its stored seed and threshold."""
    section = run.meta.get("baseline") or {}
    base = IsolationForestBaseline(
        n_estimators=int(section.get("n_estimators", DEFAULT_ESTIMATORS)),
        max_samples=section.get("max_samples", "auto"),
        smoothing_alpha=section.get("smoothing_alpha", run.smoothing_alpha),
    )
    fit_rows, _ = run.split_train_rows()  # the rows the autoencoder was fitted on, as the trainer split them
    base.fit(fit_rows, run.scaler, run.spec, int(section.get("seed", run.meta.get("seed", 0))))
    threshold = section.get("threshold")
    base.threshold = None if threshold is None else float(threshold)
    base.threshold_strategy = section.get("threshold_strategy")
    return base
