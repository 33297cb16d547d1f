"""The ``run.json`` document ``vigil train`` writes (keys: see ``trainer.rundir``)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np

from edge_agent.core import Scaler, WindowSpec
from edge_agent.readers import Table
from trainer.baseline import IsolationForestBaseline
from trainer.rundir import model_section
from trainer.threshold import ThresholdStrategy


def build_meta(cfg: Any, table: Table, spec: WindowSpec, scaler: Scaler, strategy: ThresholdStrategy,
               threshold: float, t_params: dict[str, Any], history: dict[str, list[float]],
               baseline: IsolationForestBaseline, n_fit_windows: int, n_held_windows: int,
               stats: dict[str, float], n_fit_rows: int, training_extra: dict[str, Any]) -> dict[str, Any]:
    val = history["val_loss"]
    # EarlyStopping restores the best epoch's weights; without it (patience 0) the last epoch's stay.
    best_epoch = int(np.argmin(val)) + 1 if val and cfg.patience > 0 else len(history["loss"])
    first = table.row_offset
    return {
        "features": list(table.names),
        "timestamp_column": table.timestamp_column,
        "sampling_rate_hz": table.sampling_rate_hz,
        "window": spec.window,
        "hop": spec.hop,
        "scaler": scaler.to_dict(),
        "score": {"function": cfg.score, "weights": None if cfg.weights is None else [float(w) for w in cfg.weights]},
        "smoothing": {"alpha": cfg.smoothing},
        "threshold": {"value": float(threshold), "strategy": strategy.text, "params": t_params},
        "model": model_section(cfg.model, spec.window, len(table.names), cfg.units, cfg.loss, cfg.center),
        "training": {
            "source": str(cfg.data),
            "rows": [first, first + table.n_rows],
            "fit_rows": [first, first + n_fit_rows],
            "heldout_rows": [first + n_fit_rows, first + table.n_rows],
            "epochs": cfg.epochs, "epochs_run": len(history["loss"]), "best_epoch": best_epoch,
            "batch_size": cfg.batch_size, "patience": cfg.patience, "learning_rate": cfg.learning_rate,
            "n_fit_windows": n_fit_windows, "n_heldout_windows": n_held_windows,
            "validation_fraction": cfg.validation_fraction,
            "error_stats": stats,
            "history": history,
            **training_extra,
        },
        "baseline": baseline.to_dict(),
        "seed": cfg.seed,
        "versions": _versions(),
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }


def _versions() -> dict[str, str | None]:
    from importlib import metadata

    out: dict[str, str | None] = {}
    for key, dist in (("numpy", "numpy"), ("tensorflow", "tensorflow"), ("tf_keras", "tf-keras"),
                      ("sklearn", "scikit-learn"), ("vigil", "vigil-edge")):
        try:
            out[key] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[key] = None
    return out
