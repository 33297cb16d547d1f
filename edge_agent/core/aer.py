"""AER (Wong et al., 2022): reconstruction and regression errors in one window score.

AER is an LSTM autoencoder with two regression heads: besides reconstructing
its input it predicts the value just *before* the input (backward) and just
*after* it (forward); a row's anomaly score mixes how badly it was
reconstructed with how badly it was predicted. In the paper (and Orion) the
"after" value lies beyond the window, which a device cannot wait for. Here
the arrangement is causal: of a window of ``W`` rows the network sees only
the inner rows ``1 .. W-2``, reconstructs them, and regresses row ``0``
backward and row ``W-1`` forward, so everything is known when the window's
last row arrives and the bundle's window / hop keep their meaning.

The mix (Orion's ``comb="sum"``, ``lambda_rec`` 0.5) is a weighted sum of the
two parts, each divided by its typical size on held-out normal windows (the
causal stand-in for Orion's min-max over the whole series)::

    score = lambda_rec * rec / rec_scale + (1 - lambda_rec) * reg / reg_scale

with ``rec`` the mean error of the inner rows and ``reg`` that of the two
regressed rows. Written per row it is the plain mean over the window's rows
of ``factor[t] * error[t]``, with the factors of :func:`row_factors`. The
exported model applies ``sqrt(factor)`` (mse) or ``factor`` (mae) to its own
residual, so the device's ordinary score (mean error of "input minus
output") *is* the AER score and the per-row ``step_errors`` are the combined
per-row errors: the runtime needs no second scoring path.
"""

from __future__ import annotations

import numpy as np

AER_KIND = "aer"
DEFAULT_LAMBDA_REC = 0.5
MIN_AER_WINDOW = 4  # two regressed rows and at least two inner rows to reconstruct


def row_factors(window: int, lambda_rec: float = DEFAULT_LAMBDA_REC, reconstruction_scale: float = 1.0,
                regression_scale: float = 1.0) -> np.ndarray:
    """Per-row weight ``[window]`` whose weighted row mean is the AER score (see the module docstring)."""
    if window < MIN_AER_WINDOW:
        raise ValueError(f"an AER window needs at least {MIN_AER_WINDOW} rows, not {window}")
    if not 0.0 <= lambda_rec <= 1.0:
        raise ValueError(f"lambda_rec must be in [0, 1], not {lambda_rec}")
    if reconstruction_scale <= 0 or regression_scale <= 0:
        raise ValueError("the AER scales must be positive")
    factors = np.full(window, lambda_rec * window / (window - 2) / reconstruction_scale, dtype=np.float64)
    factors[[0, -1]] = (1.0 - lambda_rec) * window / 2.0 / regression_scale
    return factors


def residual_gain(factors: np.ndarray, fn: str) -> np.ndarray:
    """What the model multiplies its residual by so that ``fn``'s error is ``factor * error``."""
    f = np.asarray(factors, dtype=np.float64)
    return np.sqrt(f) if fn == "mse" else f


def row_errors(windows: np.ndarray, predictions: np.ndarray, fn: str) -> np.ndarray:
    """Per-row, per-feature error ``[n, W, F]`` of raw predictions (squared for mse, absolute for mae)."""
    diff = np.asarray(windows, np.float64) - np.asarray(predictions, np.float64)
    return np.asarray(diff * diff if fn == "mse" else np.abs(diff), dtype=np.float64)


def part_errors(steps: np.ndarray, weights: np.ndarray | list[float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(reconstruction, regression) error of each window from per-row errors ``[n, W, F]``.

    Inner rows are the reconstruction part, rows ``0`` and ``W-1`` the
    regression part; features are averaged with the score's ``weights``.
    """
    s = np.asarray(steps, dtype=np.float64)
    if s.ndim == 2:
        s = s[None]
    n_features = s.shape[2]
    w = np.full(n_features, 1.0 / n_features) if weights is None else np.asarray(weights, np.float64)
    w = w / w.sum()
    rec = s[:, 1:-1].mean(axis=1) @ w
    reg = s[:, [0, -1]].mean(axis=1) @ w
    return np.asarray(rec, np.float64), np.asarray(reg, np.float64)


def score_shares(steps: np.ndarray, window: int, lambda_rec: float = DEFAULT_LAMBDA_REC) -> dict[str, float]:
    """Shares of one window's AER score ``[W, F]`` (combined per-row errors) due to each part."""
    rec, reg = part_errors(np.asarray(steps)[None])
    # The combined errors already carry the factors: undo the row-count weighting only.
    rec_part = float(rec[0]) * (window - 2) / window
    reg_part = float(reg[0]) * 2 / window
    total = rec_part + reg_part
    if total <= 0:
        return {"reconstruction": 0.5, "regression": 0.5}
    return {"reconstruction": rec_part / total, "regression": reg_part / total}
