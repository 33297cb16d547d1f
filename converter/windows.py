"""The windows the converter feeds to calibration and to the parity check.

* calibration (int8 only): normal *training* windows, or ``--calibration DATA``.
* ``heldout``: normal windows the model did not train on (the tail of the
  run's training rows that the fit held out for validation).
* ``stressed``: the held-out windows with deterministic, anomaly-like changes
  (noise, a spike, a level shift, a larger amplitude). Normal windows alone
  never probe the range above the threshold, where a quantized model that
  clips its activations to the calibrated range would go wrong unnoticed.
* ``data``: windows of a user file (``vigil verify``, ``vigil convert --data``).

Every set is kept as *raw* (unscaled) windows because the device's scorer
scales them itself; both sides of the parity check see the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_agent.core import Scaler, WindowSpec, sliding_windows
from edge_agent.errors import VigilInputError
from trainer.rundir import RunInfo

DEFAULT_HELDOUT_FRACTION = 0.2
STRESS_SEED = 20240917


@dataclass
class WindowSet:
    name: str
    raw: np.ndarray  # [n, window, features] float32, unscaled


def evenly(windows: np.ndarray, limit: int) -> np.ndarray:
    """At most ``limit`` windows spread evenly over the whole array."""
    if limit <= 0 or len(windows) <= limit:
        return np.ascontiguousarray(windows)
    idx = np.unique(np.linspace(0, len(windows) - 1, limit).round().astype(np.int64))
    return np.ascontiguousarray(windows[idx])


def heldout_fraction(run: RunInfo) -> float:
    """Share of the training rows the fit kept for validation (tail of the rows)."""
    training = run.meta.get("training", {}) or {}
    for key in ("validation_fraction", "val_fraction", "validation_split"):
        value = training.get(key)
        if isinstance(value, (int, float)) and 0 < value < 1:
            return float(value)
    return DEFAULT_HELDOUT_FRACTION


def split_train_rows(run: RunInfo) -> tuple[np.ndarray, np.ndarray]:
    """(rows the model trained on, held-out rows) of the run's training rows."""
    rows = np.asarray(run.train_rows(), dtype=np.float64)
    if rows.ndim == 1:
        rows = rows[:, None]
    n_heldout = int(round(len(rows) * heldout_fraction(run)))
    window = run.spec.window
    # Keep at least a few windows on each side, whatever the fraction.
    n_heldout = min(max(n_heldout, window + 8), max(len(rows) - window, 0))
    return rows[: len(rows) - n_heldout], rows[len(rows) - n_heldout :]


def raw_windows(rows: np.ndarray, spec: WindowSpec) -> np.ndarray:
    """All windows as a read-only *view* (no copy: a long file has window-times more
    window values than rows); :func:`evenly` copies only the windows it keeps."""
    return sliding_windows(np.asarray(rows, np.float32), spec)


def calibration_windows(rows: np.ndarray, scaler: Scaler, spec: WindowSpec, limit: int) -> np.ndarray:
    """Scaled windows for the int8 representative data set."""
    windows = evenly(raw_windows(rows, spec), limit)
    return np.ascontiguousarray(scaler.transform(windows), dtype=np.float32)


def stressed(raw: np.ndarray, scaler: Scaler, seed: int = STRESS_SEED) -> np.ndarray:
    """Anomaly-like variants of ``raw`` windows, one per window (same count)."""
    scaled = scaler.transform(raw).astype(np.float64)
    n, length, n_features = scaled.shape
    std = scaled.reshape(-1, n_features).std(axis=0)
    std = np.where(std > 1e-6, std, 1.0)
    rng = np.random.default_rng(seed)
    out = scaled.copy()
    for i in range(n):
        kind = i % 4
        if kind == 0:  # broadband noise
            out[i] += rng.normal(0.0, 0.5, size=(length, n_features)) * std
        elif kind == 1:  # one spike on one feature
            out[i, rng.integers(length), rng.integers(n_features)] += 4.0 * std[rng.integers(n_features)]
        elif kind == 2:  # level shift in the second half
            out[i, length // 2 :] += 1.5 * std
        else:  # larger amplitude around the window mean
            mean = out[i].mean(axis=0)
            out[i] = (out[i] - mean) * 1.8 + mean
    return np.ascontiguousarray(scaler.inverse_transform(out), dtype=np.float32)


def data_windows(path: str | Path, features: list[str], spec: WindowSpec, rows: tuple[int | None, int | None] | None) -> np.ndarray:
    """Raw windows of a user file, columns picked by the run's feature names."""
    from edge_agent.readers import load_table

    table = load_table(path, columns=features, rows=rows, min_rows=spec.window)
    values = np.asarray(table.values, dtype=np.float64)
    if not np.isfinite(values).all():
        bad = int(np.argwhere(~np.isfinite(values))[0][0])
        raise VigilInputError("non-finite value", file=str(path), row=table.row_offset + bad)
    return raw_windows(values, spec)
