"""The windows the converter feeds to calibration and to the parity check.

* calibration (int8 only): normal *training* windows, or ``--calibration DATA``.
* ``heldout``: normal windows the model did not train on (the tail of the
  run's training rows that the fit held out for validation; the split is the
  run format's, ``RunInfo.split_train_rows``, not a copy here).
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

STRESS_SEED = 20240917
MIN_CALIBRATION_RANGE = 1e-3  # scaled units: minmax maps the training range to [0, 1]


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


def raw_windows(rows: np.ndarray, spec: WindowSpec) -> np.ndarray:
    """All windows as a read-only *view* (no copy: a long file has window-times more
    window values than rows); :func:`evenly` copies only the windows it keeps."""
    return sliding_windows(np.asarray(rows, np.float32), spec)


def calibration_windows(
    raw: np.ndarray, scaler: Scaler, limit: int, center: bool = False
) -> tuple[np.ndarray, list[str]]:
    """Scaled windows for the int8 representative data set, and notes on what was added.

    Constant training data scales to one value, so every activation range the
    converter calibrates has zero width; it then writes subnormal scales
    (4.6e-41 measured) that make the integer LSTM kernel crash in
    ``allocate_tensors``, and even without a crash int8 would clip every
    departure from the constant, which is the anomaly. A flat calibration set
    therefore gets its anomaly-like variants (:func:`stressed`) added. With
    ``center`` (the model subtracts each window's mean first) flat *windows*
    are what matters, whatever their levels.
    """
    picked = evenly(raw, limit)
    scaled = np.asarray(scaler.transform(picked), dtype=np.float32)
    notes: list[str] = []
    seen = scaled - scaled.mean(axis=1, keepdims=True) if center else scaled
    if len(scaled) and float(np.ptp(seen)) < MIN_CALIBRATION_RANGE:
        variants = np.asarray(scaler.transform(stressed(picked, scaler)), dtype=np.float32)
        notes.append(f"calibration windows are flat (range {float(np.ptp(seen)):.3g} after scaling); "
                     f"added {len(variants)} anomaly-like variants so int8 ranges have non-zero width")
        scaled = np.concatenate([scaled, variants])
    return np.ascontiguousarray(scaled, dtype=np.float32), notes


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


def data_windows(path: str | Path, features: list[str], spec: WindowSpec,
                 rows: tuple[int | None, int | None] | None) -> np.ndarray:
    """Raw windows of a user file, columns picked by the run's feature names."""
    from edge_agent.readers import load_table

    table = load_table(path, columns=features, rows=rows, min_rows=spec.window)
    values = np.asarray(table.values, dtype=np.float64)
    if not np.isfinite(values).all():
        bad = int(np.argwhere(~np.isfinite(values))[0][0])
        raise VigilInputError("non-finite value", file=str(path), row=table.row_offset + bad)
    return raw_windows(values, spec)
