"""Score data with the Keras model through the shared numeric core.

The trainer, the evaluation and the converter's parity check all use this one
path for the workstation side; the device side is ``edge_agent.runtime``.
Both go through ``edge_agent.core`` for scaling, windowing and the score.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np

from edge_agent.core import (
    Scaler,
    WindowSpec,
    ewma,
    row_scores_from_windows,
    score_windows,
    sliding_windows,
    window_end_rows,
)


@dataclass
class RowScores:
    """Scores of one ``[time, features]`` array with streaming semantics."""

    window_scores: np.ndarray  # [n_windows], smoothed if smoothing is on
    raw_window_scores: np.ndarray  # [n_windows], before smoothing
    feature_errors: np.ndarray  # [n_windows, features]
    row_scores: np.ndarray  # [n_rows], NaN before the first complete window
    end_rows: np.ndarray  # [n_windows], row at which each window ends


def predict_windows(model: Any, windows: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Reconstruct scaled windows ``[n, window, f]`` with a Keras model."""
    if len(windows) == 0:
        return np.empty_like(windows, dtype=np.float32)
    x = np.ascontiguousarray(windows, dtype=np.float32)
    if len(x) <= batch_size:
        # One eager call: cheaper than tracing a graph function for a few windows.
        return np.asarray(model(x, training=False))
    # A traced graph function per batch is about twice as fast as eager calls
    # on long files (predict() would be too, but drags tf.data and its log noise in).
    reconstruct = _graph_function(model)
    out = [np.asarray(reconstruct(x[i : i + batch_size])) for i in range(0, len(x), batch_size)]
    return np.concatenate(out, axis=0)


_GRAPH_FUNCTIONS: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def _graph_function(model: Any) -> Any:
    fn = _GRAPH_FUNCTIONS.get(model)
    if fn is None:
        from trainer.keras_backend import tensorflow

        tf = tensorflow()
        _, window, n_features = model.input_shape
        spec = tf.TensorSpec([None, window, n_features], tf.float32)
        fn = tf.function(lambda batch: model(batch, training=False), input_signature=[spec])
        _GRAPH_FUNCTIONS[model] = fn
    return fn


def keras_window_scores(
    model: Any,
    scaled_windows: np.ndarray,
    fn: str = "mse",
    weights: list[float] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Raw scores ``[n]`` and per-feature errors ``[n, f]`` of scaled windows."""
    recon = predict_windows(model, scaled_windows)
    return score_windows(scaled_windows, recon, fn, weights)


def score_rows(
    model: Any,
    values: np.ndarray,
    scaler: Scaler,
    spec: WindowSpec,
    fn: str = "mse",
    weights: list[float] | None = None,
    smoothing_alpha: float | None = None,
) -> RowScores:
    """Scale, window, reconstruct and score raw rows exactly as the device does."""
    scaled = scaler.transform(values)
    windows = sliding_windows(scaled, spec)
    raw, errors = keras_window_scores(model, windows, fn, weights)
    smoothed = ewma(raw, smoothing_alpha)
    n_rows = int(np.asarray(values).shape[0])

    return RowScores(
        window_scores=smoothed,
        raw_window_scores=raw,
        feature_errors=errors,
        row_scores=row_scores_from_windows(smoothed, n_rows, spec),
        end_rows=window_end_rows(n_rows, spec),
    )
