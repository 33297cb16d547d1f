"""Tiny trained runs and bundles for the tests (real training, real conversion, a few seconds each).

``make_tiny_run`` fits a small LSTM autoencoder with ``trainer.model`` on
generated periodic data and writes a complete run directory with
``trainer.rundir.write_run``; ``make_tiny_bundle`` converts it with the
converter's public API. The session fixtures in ``tests/conftest.py`` call
them once per test session.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np

TINY_UNITS = (16, 8)
TINY_ROWS = 600
TINY_EPOCHS = 3
VALIDATION_FRACTION = 0.2
THRESHOLD_K = 3.0


def normal_rows(n_rows: int, n_features: int, seed: int = 0, start: int = 0) -> np.ndarray:
    """Periodic, slightly noisy "healthy machine" rows ``[n_rows, n_features]`` (float64).

    ``start`` continues the same signal (same phases) from that row on, so test
    data can be drawn from the distribution the run was trained on.
    """
    rng = np.random.default_rng(seed + 1000 * start + 7)
    t = np.arange(start, start + n_rows, dtype=np.float64)[:, None]
    feature = np.arange(n_features, dtype=np.float64)[None, :]
    period = 12.0 + 5.0 * feature
    phase = 0.7 * feature + 0.1 * seed
    base = np.sin(2.0 * np.pi * t / period + phase) * (1.0 + 0.5 * feature) + 2.0 * feature
    return base + rng.normal(0.0, 0.05, size=base.shape)


def with_anomalies(rows: np.ndarray, ranges: list[tuple[int, int]], seed: int = 0) -> np.ndarray:
    """Copy of ``rows`` with strong disturbances in the inclusive row ``ranges``."""
    out = np.array(rows, dtype=np.float64, copy=True)
    rng = np.random.default_rng(seed)
    for start, end in ranges:
        n = end - start + 1
        out[start : end + 1] += rng.normal(0.0, 1.5, size=(n, out.shape[1])) + 2.0
    return out


def feature_names(n_features: int) -> list[str]:
    return [f"f{i}" for i in range(n_features)]


def make_tiny_run(path: str | Path, n_features: int, window: int = 16, seed: int = 0) -> Path:
    """Train a tiny LSTM autoencoder and write a complete run directory at ``path``."""
    from edge_agent.core import Scaler, WindowSpec, sliding_windows
    from trainer.keras_backend import keras, set_seed
    from trainer.keras_scoring import keras_window_scores
    from trainer.model import build_autoencoder
    from trainer.rundir import write_run

    path = Path(path)
    set_seed(seed)
    spec = WindowSpec(window, 1)
    rows = normal_rows(TINY_ROWS, n_features, seed)
    n_val = int(round(len(rows) * VALIDATION_FRACTION))
    fit_rows, val_rows = rows[:-n_val], rows[-n_val:]
    scaler = Scaler.fit(fit_rows, "minmax")
    fit_windows = np.ascontiguousarray(sliding_windows(scaler.transform(fit_rows), spec))
    val_windows = np.ascontiguousarray(sliding_windows(scaler.transform(val_rows), spec))

    model = build_autoencoder("lstm", window, n_features, TINY_UNITS, learning_rate=1e-2)
    history = model.fit(
        fit_windows, fit_windows, epochs=TINY_EPOCHS, batch_size=64, shuffle=True,
        validation_data=(val_windows, val_windows), verbose=0,
    )
    val_scores, _ = keras_window_scores(model, val_windows, "mse", None)
    stats = _error_stats(val_scores)
    threshold = stats["mean"] + THRESHOLD_K * stats["std"]
    meta = {
        "features": feature_names(n_features),
        "timestamp_column": None,
        "sampling_rate_hz": 100.0,
        "window": window,
        "hop": 1,
        "scaler": scaler.to_dict(),
        "score": {"function": "mse", "weights": None},
        "smoothing": {"alpha": None},
        "threshold": {"value": float(threshold), "strategy": "mean+k*std",
                      "params": {"k": THRESHOLD_K, "from": "held-out normal windows"}},
        "model": {"kind": "lstm", "units": list(TINY_UNITS), "loss": "mse"},
        "training": {
            "source": "tests.models.normal_rows",
            "rows": [0, len(rows)],
            "epochs": TINY_EPOCHS,
            "epochs_run": len(history.history["loss"]),
            "validation_fraction": VALIDATION_FRACTION,
            "windows": {"train": int(len(fit_windows)), "validation": int(len(val_windows))},
            "error_stats": stats,
        },
        "baseline": _baseline(fit_rows, val_rows, scaler, spec),
        "seed": seed,
        "versions": {"tf_keras": str(getattr(keras(), "__version__", "?")), "numpy": np.__version__},
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    write_run(path, meta, model, rows)
    return path


def make_tiny_bundle(run_dir: str | Path, out_path: str | Path, mode: str = "float32") -> Path:
    """Convert ``run_dir`` to a ``.vigil`` bundle in ``mode`` through the converter API."""
    from converter.convert import ConvertConfig, run_convert

    result = run_convert(ConvertConfig(run=Path(run_dir), out=Path(out_path), quantize=mode, quiet=True))
    return result.bundle_path


def _error_stats(scores: np.ndarray) -> dict[str, float]:
    s = np.asarray(scores, dtype=np.float64)
    return {
        "mean": float(s.mean()),
        "std": float(s.std()),
        "q50": float(np.quantile(s, 0.5)),
        "q90": float(np.quantile(s, 0.9)),
        "q99": float(np.quantile(s, 0.99)),
        "max": float(s.max()),
    }


def _baseline(fit_rows: np.ndarray, val_rows: np.ndarray, scaler: object, spec: object) -> dict[str, object]:
    """The run.json baseline section, fitted like the trainer does (threshold from held-out windows)."""
    entry: dict[str, object] = {"kind": "isolation_forest", "n_estimators": 50, "seed": 0, "threshold": None}
    try:
        from trainer.baseline import IsolationForestBaseline  # built by another helper
    except ImportError:
        return entry
    baseline = IsolationForestBaseline(n_estimators=50).fit(fit_rows, scaler, spec, 0)  # type: ignore[arg-type]
    scores = baseline.raw_window_scores(val_rows)
    baseline.threshold = float(scores.mean() + THRESHOLD_K * scores.std())
    return {**baseline.to_dict(), "threshold": baseline.threshold}
